"""The status look-up job, with fakes: sends left without a final status are asked about at their
provider, the answer applied like a callback, rate-bounded, with backoff and a maximum age."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from service.domain.errors import ProviderUnavailable
from service.domain.ports import DeliveryStatus
from service.domain.status_check import Answer, StatusCheckPolicy
from service.report.status_checks import StatusChecks
from tests.builders import event
from tests.unit.pipeline.test_driver import Harness
from tests.unit.report.test_delivery_reports import reports

POLICY = StatusCheckPolicy(after_s=900, max_age_s=48 * 3600, cap_s=3600)


@pytest.fixture
def h() -> Harness:
    return Harness()


def checks(h: Harness, **kw: object) -> StatusChecks:
    options: dict[str, object] = {
        "store": h.store,
        "reports": reports(h),
        "senders": [h.sender, h.backup],
        "metrics": h.metrics,
        "policy": POLICY,
        "rates": {"sms-a": 1000.0, "sms-b": 1000.0},
        "clock": lambda: h.store.now,
        "monotonic": h.clock,
        "sleep": h.clock.sleep,
    }
    options.update(kw)
    return StatusChecks(**options)  # type: ignore[arg-type]


def later(h: Harness, seconds: float) -> None:
    h.store.now += timedelta(seconds=seconds)


def receipts(h: Harness) -> list[tuple[str, str]]:
    return [(d["outcome"], d["channel"]) for d in (json.loads(r.payload) for r in h.receipts.published)]


def counted(h: Harness, result: str, provider: str = "sms-a") -> float:
    value = h.metrics.registry.get_sample_value(
        "notifier_status_reconciliations_total", {"provider": provider, "result": result}
    )
    return value or 0.0


async def test_a_send_whose_report_was_lost_is_looked_up_and_its_delivery_receipted_once(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    ref = h.sender.references[0]
    h.sender.statuses[ref] = DeliveryStatus(Answer.DELIVERED)
    job = checks(h)
    later(h, 899)
    assert await job.run_once() == 0  # too early: the report may still come
    assert h.sender.status_lookups == []
    later(h, 1)
    assert await job.run_once() == 1
    assert h.sender.status_lookups == [ref]
    assert receipts(h) == [("sent", "sms"), ("delivered", "sms")]
    assert counted(h, "delivered") == 1
    assert h.metrics.registry.get_sample_value("notifier_callbacks_total", {"provider": "sms-a", "result": "delivered"}) is None  # fmt: skip
    later(h, 10 * 86_400)
    assert await job.run_once() == 0  # final: never asked again
    assert h.sender.status_lookups == [ref]
    assert len(h.receipts.published) == 2


async def test_an_undelivered_answer_is_receipted_and_falls_back_to_email_like_a_callback(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    ref = h.sender.references[0]
    h.sender.statuses[ref] = DeliveryStatus(Answer.UNDELIVERED, "30003")
    later(h, 900)
    await checks(h).run_once()
    assert receipts(h) == [("sent", "sms"), ("undelivered", "sms"), ("sent", "email")]
    assert json.loads(h.receipts.published[1].payload)["reason"] == "sms-a_30003"
    assert len(h.email.sent) == 1
    assert counted(h, "undelivered") == 1


async def test_a_pending_send_is_looked_up_again_with_backoff_then_given_up_at_its_maximum_age(
    h: Harness,
) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    job = checks(h)
    later(h, 900)
    await job.run_once()  # pending: next look 900 s later
    later(h, 899)
    assert await job.run_once() == 0
    later(h, 1)
    assert await job.run_once() == 1  # pending again: next 1800 s later
    later(h, 1799)
    assert await job.run_once() == 0
    later(h, 1)
    assert await job.run_once() == 1
    assert counted(h, "pending") == 3
    later(h, 48 * 3600)  # past the maximum age
    assert await job.run_once() == 1
    assert counted(h, "gave_up") == 1
    later(h, 86_400)
    assert await job.run_once() == 0  # given up: not asked again
    assert len(h.sender.status_lookups) == 4
    assert receipts(h) == [("sent", "sms")]  # no status the provider did not give
    (row,) = h.store.rows.values()
    assert row.state == "sent"


async def test_a_callback_that_came_first_leaves_nothing_to_look_up(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"), event("B", "ARRIVED_HK_WAREHOUSE"))
    first, second = h.sender.references
    await reports(h).report("sms-a", first, delivered=True)
    later(h, 900)
    await checks(h).run_once()
    assert h.sender.status_lookups == [second]


async def test_a_report_that_lands_while_the_provider_is_asked_is_applied_once(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    ref = h.sender.references[0]
    asked = h.sender.delivery_status

    async def callback_meanwhile(message_id: str | None, *, reference: str) -> DeliveryStatus | None:
        await reports(h).report("sms-a", reference, delivered=True)  # the callback wins the race
        return await asked(message_id, reference=reference)

    h.sender.statuses[ref] = DeliveryStatus(Answer.DELIVERED)
    h.sender.delivery_status = callback_meanwhile  # type: ignore[method-assign]
    later(h, 900)
    await checks(h).run_once()
    assert counted(h, "stale") == 1
    assert receipts(h) == [("sent", "sms"), ("delivered", "sms")]  # once


async def test_a_provider_that_cannot_answer_is_asked_again_later(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    h.sender.status_errors.append(ProviderUnavailable("sms-a", "503"))
    job = checks(h)
    later(h, 900)
    await job.run_once()
    assert counted(h, "error") == 1
    later(h, 900)
    await job.run_once()
    assert counted(h, "pending") == 1
    assert receipts(h) == [("sent", "sms")]


async def test_look_ups_are_bounded_per_run_and_by_the_providers_share(h: Harness) -> None:
    await h.feed(*(event(f"O{i}", "ARRIVED_HK_WAREHOUSE") for i in range(40)))
    later(h, 900)
    assert await checks(h, batch=10).run_once() == 10  # at most ``batch`` per run
    assert len(h.sender.status_lookups) == 10
    # One look-up a second, paced, and a 20 s lease: the run stops at half the lease (1 + 10 s)
    job = checks(h, rates={"sms-a": 1.0}, lease_s=20.0)
    started = h.clock.now
    assert await job.run_once() == 30
    assert len(h.sender.status_lookups) == 10 + 11
    assert h.clock.now - started <= 10.0
    assert counted(h, "deferred") == 19
    assert await job.run_once() == 19  # the deferred ones are due at once, for the next run
    assert 10 + 11 < len(h.sender.status_lookups) <= 10 + 11 + 11


async def test_the_rate_share_follows_the_instances_share_of_partitions(h: Harness) -> None:
    await h.feed(*(event(f"O{i}", "ARRIVED_HK_WAREHOUSE") for i in range(20)))
    later(h, 900)
    job = checks(h, rates={"sms-a": 4.0}, lease_s=20.0)
    job.set_share(0.25)  # one instance of four: one look-up a second
    await job.run_once()
    assert len(h.sender.status_lookups) == 11  # 1 + 10 s at 1/s (4/s would have done all 20)


async def test_no_look_ups_while_sends_are_paused_or_the_providers_circuit_is_open(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    later(h, 900)
    assert await checks(h, paused=lambda: True).run_once() == 0
    await checks(h, circuit_open=lambda provider: provider == "sms-a").run_once()
    assert counted(h, "deferred") == 1
    assert h.sender.status_lookups == []
    later(h, 900)
    await checks(h).run_once()
    assert h.sender.status_lookups == h.sender.references


async def test_a_send_whose_provider_is_no_longer_configured_is_given_up_at_its_maximum_age(
    h: Harness,
) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    job = checks(h, senders=[h.backup])  # sms-a removed from NOTIFIER_SMS_PROVIDERS since
    later(h, 900)
    await job.run_once()
    assert counted(h, "deferred") == 1
    later(h, 48 * 3600)
    await job.run_once()
    assert counted(h, "gave_up") == 1
    later(h, 86_400)
    assert await job.run_once() == 0
    assert receipts(h) == [("sent", "sms")]
