"""Delivery reports applied to notifications, with fakes: delivered, undelivered -> email, stale."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from service.domain.backoff import backoff_delay
from service.domain.errors import InvalidRecipient, ProviderUnavailable
from service.domain.lifecycle import IllegalTransition, State
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import OutboxRow
from service.privacy.crypto import Keyring
from service.report.delivery_reports import DeliveryReports
from tests.builders import EMAIL, event
from tests.unit.pipeline.test_driver import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()


def reports(h: Harness) -> DeliveryReports:
    return made(h)


def receipts(h: Harness) -> list[tuple[str, str, str | None]]:
    return [
        (d["outcome"], d["channel"], d["provider"])
        for d in (json.loads(r.payload) for r in h.receipts.published)
    ]


async def test_delivered_report_closes_the_notification_with_a_receipt(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    ref = h.sender.references[0]
    assert await reports(h).report("sms-a", ref, delivered=True) == "delivered"
    assert receipts(h) == [("sent", "sms", "sms-a"), ("delivered", "sms", "sms-a")]
    assert await reports(h).report("sms-a", ref, delivered=True) == "stale"  # a repeat changes nothing
    assert len(h.receipts.published) == 2


async def test_undelivered_sms_falls_back_to_email_with_a_receipt_for_each_step(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    ref = h.sender.references[0]
    result = await reports(h).report("sms-a", ref, delivered=False, code="30003")
    assert result == "undelivered_email_sent"
    assert receipts(h) == [
        ("sent", "sms", "sms-a"),
        ("undelivered", "sms", "sms-a"),
        ("sent", "email", "fake-email"),
    ]
    undelivered = json.loads(h.receipts.published[1].payload)
    assert undelivered["reason"] == "sms-a_30003"
    to, message = h.email.sent[0]
    assert to == EMAIL
    assert "旺角" in message.text
    assert len({json.loads(r.payload)["receipt_id"] for r in h.receipts.published}) == 3


async def test_report_for_an_unknown_or_malformed_reference_changes_nothing(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert await reports(h).report("sms-a", "not-a-reference", delivered=False) == "bad_reference"
    assert (
        await reports(h).report("sms-a", h.references.make(uuid.UUID(int=0), 1), delivered=False) == "stale"
    )
    parsed = h.references.parse(h.sender.references[0])
    assert parsed is not None
    wrong_step = h.references.make(parsed[0], 2)
    assert await reports(h).report("sms-a", wrong_step, delivered=False) == "stale"
    assert h.email.sent == []
    assert len(h.receipts.published) == 1


async def test_a_reference_made_from_the_order_id_and_milestone_alone_is_refused(h: Harness) -> None:
    # What anyone who knows an order number can compute: the notification id and the step.
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    guessable = notification_id("A", Milestone.ARRIVED_HK_WAREHOUSE).hex
    real = h.sender.references[0]
    assert real.startswith(guessable)
    for forged in (
        f"{guessable}.1",
        f"{guessable}.1.{'0' * 24}",
        real[:-1] + ("0" if real[-1] != "0" else "1"),
    ):
        assert await reports(h).report("sms-a", forged, delivered=False) == "bad_reference"
    assert h.email.sent == []
    assert len(h.receipts.published) == 1


async def test_a_report_from_another_provider_than_the_sender_changes_nothing(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))  # sent by sms-a
    ref = h.sender.references[0]
    assert await reports(h).report("sms-b", ref, delivered=False) == "wrong_provider"
    assert await reports(h).report("fake-email", ref, delivered=True) == "wrong_provider"
    assert h.email.sent == []
    assert receipts(h) == [("sent", "sms", "sms-a")]
    counted = h.metrics.registry.get_sample_value(
        "notifier_callbacks_total", {"provider": "sms-b", "result": "wrong_provider"}
    )
    assert counted == 1
    assert await reports(h).report("sms-a", ref, delivered=True) == "delivered"  # its own provider still can


async def test_undelivered_email_is_final(h: Harness) -> None:
    await h.feed(
        event("A", "ARRIVED_HK_WAREHOUSE", recipient={"name": "x", "phone": "2123 4567", "email": EMAIL})
    )
    (outcome,) = receipts(h)
    assert outcome == ("sent", "email", "fake-email")
    ref = json.loads(h.receipts.published[0].payload)
    target = await h.store.delivery_target(uuid.UUID(ref["notification_id"]))
    assert target is not None
    assert target.reference is not None
    assert (
        await reports(h).report("fake-email", target.reference, delivered=False, code="bounce")
        == "undelivered"
    )
    assert len(h.email.sent) == 1


async def test_a_report_that_overtakes_the_send_is_held_and_applied_once_recorded(h: Harness) -> None:
    r = reports(h)
    original = h.store.finish

    async def report_first(*args: object, **kwargs: object) -> None:
        # The provider's report arrives while the send is still being recorded.
        ref = h.sender.references[0]
        assert await r.report("sms-a", ref, delivered=True) == "held"
        await original(*args, **kwargs)  # type: ignore[arg-type]

    h.store.finish = report_first  # type: ignore[method-assign]
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert receipts(h) == [("sent", "sms", "sms-a"), ("delivered", "sms", "sms-a")]
    assert h.store.held == {}


def email_down(h: Harness) -> None:
    h.email.errors[:] = [ProviderUnavailable("fake-email", "503") for _ in range(1000)]


def email_back(h: Harness) -> None:
    h.email.errors.clear()
    h.clock.now += 3600  # past any open circuit


def owed(h: Harness) -> bool:
    return any(row.fallback_due is not None for row in h.store.rows.values())


def fallbacks(h: Harness, result: str) -> float:
    return h.metrics.registry.get_sample_value("notifier_email_fallbacks_total", {"result": result}) or 0.0


async def test_a_fallback_the_email_provider_cannot_take_stays_owed_and_goes_out_when_it_returns(
    h: Harness,
) -> None:
    r = reports(h)
    await h.feed(event("A", "READY_FOR_PICKUP"))
    email_down(h)
    assert await r.report("sms-a", h.sender.references[0], delivered=False) == "undelivered_email_held"
    assert owed(h)
    assert receipts(h) == [("sent", "sms", "sms-a"), ("undelivered", "sms", "sms-a")]  # nothing final yet

    assert await r.retry_fallbacks() == 0  # not due yet
    h.store.now += timedelta(seconds=31)
    assert await r.retry_fallbacks() == 1  # due: tried, still down, owed again (later)
    assert owed(h)
    email_back(h)
    h.store.now += timedelta(seconds=61)
    assert await r.retry_fallbacks() == 1
    assert [to for to, _ in h.email.sent] == [EMAIL]
    assert receipts(h)[-1] == ("sent", "email", "fake-email")
    assert not owed(h)
    assert (fallbacks(h, "held"), fallbacks(h, "sent")) == (2, 1)
    h.store.now += timedelta(hours=1)
    assert await r.retry_fallbacks() == 0  # decided: never sent twice


async def test_a_fallback_out_of_attempts_is_recorded_failed_with_a_receipt(h: Harness) -> None:
    r = DeliveryReports(
        store=h.store,
        receipts=h.stages.receipts,
        sender=h.stages.sender,
        keyring=h.keyring,
        metrics=h.metrics,
        references=h.references,
        fallback_attempts=2,
    )
    await h.feed(event("A", "READY_FOR_PICKUP"))
    email_down(h)
    assert await r.report("sms-a", h.sender.references[0], delivered=False) == "undelivered_email_held"
    h.store.now += timedelta(seconds=31)
    assert await r.retry_fallbacks() == 1
    last = json.loads(h.receipts.published[-1].payload)
    assert (last["outcome"], last["channel"], last["reason"]) == ("failed", "email", "fake-email_503")
    assert not owed(h)
    assert fallbacks(h, "gave_up") == 1


async def test_a_fallback_left_by_a_process_that_died_is_taken_up_when_its_lease_ends(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    ref = h.sender.references[0]
    parsed = h.references.parse(ref)
    assert parsed is not None
    nid = parsed[0]
    # The report was recorded (the fallback owed, leased to the process) and then the process died.
    receipt = OutboxRow(uuid.uuid4(), nid, "A", b"{}")
    assert await h.store.record_delivery(nid, ref, "undelivered", "sms-a_30003", receipt, fallback_in_s=120)
    r = reports(h)
    h.store.now += timedelta(seconds=60)
    assert await r.retry_fallbacks() == 0  # still leased to the dead process
    h.store.now += timedelta(seconds=61)
    assert await r.retry_fallbacks() == 1
    assert [to for to, _ in h.email.sent] == [EMAIL]
    assert not owed(h)


async def test_without_an_email_address_nothing_is_owed(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP", recipient={"name": "x", "phone": "9123 4567"}))
    assert await reports(h).report("sms-a", h.sender.references[0], delivered=False) == "undelivered_no_email"
    assert not owed(h)
    assert fallbacks(h, "no_email") == 1


async def test_the_sealed_event_holds_only_known_fields_and_still_feeds_the_fallback(h: Harness) -> None:
    # A producer's extra fields (here, data we must not keep) are not sealed for 90 days.
    await h.feed(event("A", "READY_FOR_PICKUP", loyalty_card="LC-998877", notes={"hkid": "A123456(7)"}))
    (sealed,) = h.store.contacts.values()
    keyring = h.keyring
    assert keyring is not None
    plain = keyring.decrypt(sealed.key_id, sealed.ciphertext, sealed.notification_id.bytes)
    assert b"LC-998877" not in plain
    assert b"A123456" not in plain
    assert set(json.loads(plain)) == {
        "schema_version", "event_id", "order_id", "waybill", "status", "occurred_at",
        "location", "bike_model", "recipient", "pickup",
    }  # fmt: skip
    # The round trip still works: the undelivered SMS falls back to an email rendered from it.
    ref = h.sender.references[0]
    assert await reports(h).report("sms-a", ref, delivered=False, code="30003") == "undelivered_email_sent"
    assert "旺角" in h.email.sent[0][1].text


async def test_a_report_on_a_notification_not_sent_is_refused_by_the_life_cycle(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    target = await h.store.delivery_target(notification_id("A", Milestone.ARRIVED_HK_WAREHOUSE))
    assert target is not None
    published = list(h.receipts.published)
    with pytest.raises(IllegalTransition, match="report_delivered is not allowed from claimed"):
        await reports(h).apply_result(
            dataclasses.replace(target, state=State.CLAIMED), "sms-a", delivered=True
        )
    assert h.receipts.published == published  # nothing recorded, no receipt
    assert [r.state for r in h.store.rows.values()] == [State.SENT]


def made(h: Harness, **kw: object) -> DeliveryReports:
    args: dict[str, object] = {
        "store": h.store,
        "receipts": h.stages.receipts,
        "sender": h.stages.sender,
        "keyring": h.keyring,
        "metrics": h.metrics,
        "references": h.references,
    }
    return DeliveryReports(**(args | kw))  # type: ignore[arg-type]


def logged(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == name]


async def test_a_report_is_decided_at_an_aware_utc_time(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    await reports(h).report("sms-a", h.sender.references[0], delivered=True)
    delivered = json.loads(h.receipts.published[-1].payload)
    assert delivered["reason"] is None
    assert delivered["decided_at"].endswith(("Z", "+00:00"))


async def test_an_undelivered_report_without_a_code_says_undelivered(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    await reports(h).report("sms-a", h.sender.references[0], delivered=False)
    assert json.loads(h.receipts.published[1].payload)["reason"] == "sms-a_undelivered"


async def test_an_undelivered_email_report_is_receipted_on_the_email_channel(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE", phone="2123 4567"))
    target = await h.store.delivery_target(notification_id("A", Milestone.ARRIVED_HK_WAREHOUSE))
    assert target is not None
    assert target.reference is not None
    await reports(h).report("fake-email", target.reference, delivered=False, code="bounce")
    last = json.loads(h.receipts.published[-1].payload)
    assert (last["outcome"], last["channel"], last["reason"]) == ("undelivered", "email", "fake-email_bounce")


async def test_a_target_without_a_reference_is_stale(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    target = await h.store.delivery_target(notification_id("A", Milestone.ARRIVED_HK_WAREHOUSE))
    assert target is not None
    no_ref = dataclasses.replace(target, reference=None)
    assert await reports(h).apply_result(no_ref, "sms-a", delivered=True) == "stale"


async def test_a_delivered_report_owes_no_fallback(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    await reports(h).report("sms-a", h.sender.references[0], delivered=True)
    assert not owed(h)


async def test_a_forged_callback_is_counted_by_provider(h: Harness) -> None:
    reports(h).rejected("twilio")
    labels = {"provider": "twilio", "result": "forged"}
    assert h.metrics.registry.get_sample_value("notifier_callbacks_total", labels) == 1


async def test_a_report_from_another_provider_is_logged_with_both_names(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    with capture_logs() as logs:
        assert await reports(h).report("sms-b", h.sender.references[0], delivered=True) == "wrong_provider"
    assert logged(logs, "callback_wrong_provider") == [
        {"event": "callback_wrong_provider", "log_level": "warning", "provider": "sms-b", "sent_by": "sms-a"}
    ]


async def test_a_held_report_is_applied_with_its_code(h: Harness) -> None:
    r = reports(h)
    original = h.store.finish

    async def finish_after_a_report(*args: object, **kw: object) -> None:
        assert await r.report("sms-a", h.sender.references[0], delivered=False, code="30005") == "held"
        await original(*args, **kw)  # type: ignore[arg-type]

    h.store.finish = finish_after_a_report  # type: ignore[method-assign]
    await h.feed(event("A", "READY_FOR_PICKUP", email=None))
    undelivered = [json.loads(p.payload) for p in h.receipts.published][1]
    assert (undelivered["outcome"], undelivered["reason"]) == ("undelivered", "sms-a_30005")


@pytest.mark.parametrize(
    ("keyring", "level", "why"),
    [
        (lambda: None, "warning", "no sealed contact"),  # this process cannot open what is sealed
        (lambda: Keyring({"k1": os.urandom(32)}, "k1"), "error", "DecryptionFailed"),  # the wrong key
    ],
    ids=["no_keyring", "wrong_key"],
)
async def test_a_sealed_contact_this_process_cannot_open_is_no_fallback_and_logged(
    h: Harness, keyring: Callable[[], Keyring | None], level: str, why: str
) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    nid = notification_id("A", Milestone.READY_FOR_PICKUP)
    assert await h.store.contact(nid) is not None
    with capture_logs() as logs:
        result = await made(h, keyring=keyring()).report("sms-a", h.sender.references[0], delivered=False)
    assert result == "undelivered_no_fallback"
    assert logged(logs, "fallback_impossible") == [
        {"event": "fallback_impossible", "log_level": level, "notification_id": str(nid), "why": why}
    ]
    assert not owed(h)
    assert fallbacks(h, "no_fallback") == 1
    assert h.email.sent == []


async def test_a_held_fallback_is_logged_with_its_attempt_and_delay(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    nid = notification_id("A", Milestone.READY_FOR_PICKUP)
    email_down(h)
    r = made(h, rng=random.Random(5), fallback_retry_s=10.0)
    with capture_logs() as logs:
        await r.report("sms-a", h.sender.references[0], delivered=False)
    expected = backoff_delay(0, base_s=10.0, cap_s=1800.0, rng=random.Random(5))
    (held,) = logged(logs, "fallback_held")
    assert held == {
        "event": "fallback_held",
        "log_level": "warning",
        "notification_id": str(nid),
        "attempt": 1,
        "retry_in_s": expected,
        "reason": held["reason"],
    }
    assert held["reason"]
    row = next(iter(h.store.rows.values()))
    assert row.fallback_due == h.store.now + timedelta(seconds=expected)


async def test_later_attempts_wait_longer_up_to_the_cap(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    email_down(h)
    r = made(h, rng=random.Random(5), fallback_retry_s=1000.0)
    await r.report("sms-a", h.sender.references[0], delivered=False)
    h.store.now += timedelta(hours=2)
    with capture_logs() as logs:
        assert await r.retry_fallbacks() == 1
    rng = random.Random(5)
    backoff_delay(0, base_s=1000.0, cap_s=1800.0, rng=rng)
    assert [e["retry_in_s"] for e in logged(logs, "fallback_held")] == [
        backoff_delay(1, base_s=1000.0, cap_s=1800.0, rng=rng)
    ]
    assert [(e["log_level"], e["result"]) for e in logged(logs, "fallback_retried")] == [
        ("info", "undelivered_email_held")
    ]
    assert logged(logs, "fallback_retried")[0]["notification_id"] == str(
        notification_id("A", Milestone.READY_FOR_PICKUP)
    )


async def test_the_defaults_hold_a_fallback_twelve_times_thirty_seconds_apart_at_first(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    email_down(h)
    r = reports(h)
    with capture_logs() as logs:
        await r.report("sms-a", h.sender.references[0], delivered=False)
    (held,) = logged(logs, "fallback_held")
    assert 0 <= held["retry_in_s"] <= 30.0  # type: ignore[operator]
    for _ in range(10):
        h.store.now += timedelta(hours=1)
        assert await r.retry_fallbacks() == 1
    assert fallbacks(h, "held") == 11
    h.store.now += timedelta(hours=1)
    assert await r.retry_fallbacks() == 1
    assert fallbacks(h, "gave_up") == 1


async def test_a_fallback_left_by_a_dead_process_waits_out_the_default_lease(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    ref = h.sender.references[0]
    nid = notification_id("A", Milestone.READY_FOR_PICKUP)
    assert await h.store.record_delivery(
        nid, ref, "undelivered", "sms-a_30003", OutboxRow(uuid.uuid4(), nid, "A", b"{}"), fallback_in_s=0
    )
    r = reports(h)
    email_down(h)
    assert await r.retry_fallbacks() == 1  # taken, leased for the default 120 s, and held (backoff)
    row = next(iter(h.store.rows.values()))
    row.fallback_due = h.store.now  # due again at once: taken with a fresh lease
    h.email.errors.clear()

    taken = h.store.due_fallbacks

    async def leases(limit: int, lease_s: float) -> list[object]:
        assert (limit, lease_s) == (100, 120.0)
        return await taken(limit, lease_s)  # type: ignore[return-value]

    h.store.due_fallbacks = leases  # type: ignore[method-assign]
    assert await r.retry_fallbacks() == 1


async def test_retrying_takes_at_most_the_limit_and_drops_what_was_decided_meanwhile(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"), event("B", "READY_FOR_PICKUP"))
    email_down(h)
    r = reports(h)
    for ref in h.sender.references:
        await r.report("sms-a", ref, delivered=False)
    a = h.store._by_id()[notification_id("A", Milestone.READY_FOR_PICKUP)]
    a.state = State.FAILED  # decided meanwhile (e.g. by an operator)
    a.fallback_due = h.store.now - timedelta(seconds=2)  # first in line
    h.store.now += timedelta(hours=1)
    email_back(h)
    assert await r.retry_fallbacks(limit=1) == 1  # A only: dropped
    assert a.fallback_due is None
    assert h.email.sent == []
    assert await r.retry_fallbacks() == 1  # B: sent
    assert [to for to, _ in h.email.sent] == [EMAIL]


async def test_a_sent_fallback_is_logged_and_a_refused_one_is_logged_failed(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"), event("B", "READY_FOR_PICKUP"))
    a, b = h.sender.references
    with capture_logs() as logs:
        assert await reports(h).report("sms-a", a, delivered=False) == "undelivered_email_sent"
        h.email.errors.append(InvalidRecipient("fake-email", "bounce"))
        assert await reports(h).report("sms-a", b, delivered=False) == "undelivered_email_failed"
    assert [
        {k: e[k] for k in ("event", "log_level", "notification_id", "outcome", "reason")}
        for e in logs
        if str(e["event"]).startswith("fallback_")
    ] == [
        {
            "event": "fallback_sent",
            "log_level": "info",
            "notification_id": str(notification_id("A", Milestone.READY_FOR_PICKUP)),
            "outcome": "sent",
            "reason": None,
        },
        {
            "event": "fallback_failed",
            "log_level": "info",
            "notification_id": str(notification_id("B", Milestone.READY_FOR_PICKUP)),
            "outcome": "failed",
            "reason": "fake-email_bounce",
        },
    ]
    assert (fallbacks(h, "sent"), fallbacks(h, "failed")) == (1, 1)


async def test_a_report_whose_send_is_recorded_while_it_is_being_held_is_applied_at_once(h: Harness) -> None:
    r = reports(h)
    finish, hold = h.store.finish, h.store.hold_report
    pending: list[tuple[tuple[object, ...], dict[str, object]]] = []
    results: list[str] = []

    async def hold_then_the_send_is_recorded(*args: object) -> None:
        await hold(*args)  # type: ignore[arg-type]
        a, kw = pending.pop()
        await finish(*a, **kw)  # type: ignore[arg-type]

    async def finish_after_a_report(*args: object, **kw: object) -> None:
        pending.append((args, kw))
        results.append(await r.report("sms-a", h.sender.references[0], delivered=True))

    h.store.finish = finish_after_a_report  # type: ignore[method-assign]
    h.store.hold_report = hold_then_the_send_is_recorded  # type: ignore[method-assign]
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert results == ["delivered"]  # taken back and applied by whoever saw the send recorded
    assert receipts(h) == [("sent", "sms", "sms-a"), ("delivered", "sms", "sms-a")]
    assert h.store.held == {}


async def test_a_report_the_store_finds_stale_when_recording_it_is_stale(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))

    async def stale(*args: object, **kw: object) -> bool:
        return False  # another instance recorded a report on this attempt meanwhile

    h.store.record_delivery = stale  # type: ignore[method-assign]
    assert await reports(h).report("sms-a", h.sender.references[0], delivered=True) == "stale"


async def test_retrying_drops_what_was_decided_and_goes_on_with_the_rest(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"), event("B", "READY_FOR_PICKUP"))
    email_down(h)
    r = reports(h)
    for ref in h.sender.references:
        await r.report("sms-a", ref, delivered=False)
    a = h.store._by_id()[notification_id("A", Milestone.READY_FOR_PICKUP)]
    a.state = State.FAILED
    a.fallback_due = h.store.now - timedelta(seconds=2)  # first in line
    h.store.now += timedelta(hours=1)
    email_back(h)
    assert await r.retry_fallbacks() == 2
    assert [to for to, _ in h.email.sent] == [EMAIL]  # B's


async def test_the_first_retry_of_a_held_fallback_waits_up_to_thirty_seconds_by_default(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    email_down(h)
    with capture_logs() as logs:
        await made(h, rng=random.Random(3)).report("sms-a", h.sender.references[0], delivered=False)
    expected = backoff_delay(0, base_s=30.0, cap_s=1800.0, rng=random.Random(3))
    assert [e["retry_in_s"] for e in logged(logs, "fallback_held")] == [expected]
