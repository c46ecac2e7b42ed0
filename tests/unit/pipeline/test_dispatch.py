"""Dispatching one claimed notification: stale, re-claimed after a crash, or new; on the fakes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from service.contracts import parse_event
from service.domain.consent_snapshot import NO_RECORD, ConsentSnapshot, ConsentState
from service.domain.errors import StoreUnavailable
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import Claimed, ClaimRequest
from service.pipeline.dispatch import Dispatcher
from service.pipeline.stages import build_stages
from tests.builders import event
from tests.unit.pipeline.test_driver import Harness, record

MS = Milestone.ARRIVED_HK_WAREHOUSE
NID = notification_id("A", MS)


@pytest.fixture
def h() -> Harness:
    return Harness()


async def crashed_claim(h: Harness, *, sent: bool) -> None:
    """A claim taken by a process that died before recording its outcome (after its send, if ``sent``)."""
    await h.store.claim([ClaimRequest(NID, parse_event(event("A", "ARRIVED_HK_WAREHOUSE")), MS, "claimed")])
    if sent:
        await h.sender.send_sms("+85291234567", "body", reference=h.references.make(NID, 1))


def reclaimed(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "notification_reclaimed"]


async def test_a_reclaimed_send_found_at_the_provider_is_logged_as_not_sent_again(h: Harness) -> None:
    await crashed_claim(h, sent=True)
    with capture_logs() as logs:
        await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert reclaimed(logs) == [
        {
            "event": "notification_reclaimed",
            "log_level": "warning",
            "notification_id": str(NID),
            "claims": 2,
            "outcome": "sent",
            "sent_again": False,
            "resent": False,
        }
    ]


async def test_a_reclaimed_send_the_providers_never_had_is_sent_and_not_a_duplicate(h: Harness) -> None:
    await crashed_claim(h, sent=False)
    with capture_logs() as logs:
        await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    assert [(e["sent_again"], e["resent"]) for e in reclaimed(logs)] == [(True, False)]
    assert not h.metrics.registry.get_sample_value("notifier_possible_duplicate_sends_total")
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["reason"]) == ("sent", None)


async def test_a_reclaimed_notification_keeps_the_callers_consent(h: Harness) -> None:
    await crashed_claim(h, sent=False)
    await h.store.set_consent([h.blind.phone("+85291234567")], opted_out=True, source="operator:test")
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert h.sender.sent == []
    assert [o for _, o in h.outcomes()] == ["suppressed_opted_out"]


async def test_a_stale_milestone_is_recorded_with_its_reason(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    stale = json.loads(h.receipts.published[1].payload)
    assert (stale["outcome"], stale["channel"], stale["reason"]) == (
        "suppressed_stale",
        "none",
        "later_milestone_already_reached",
    )


async def test_without_a_keyring_a_send_is_recorded_and_nothing_sealed(h: Harness) -> None:
    stages = build_stages(
        store=h.store,
        engine=h.pipeline_engine,
        renderer=h.renderer,
        receipts=h.receipts,
        dead_letters=h.dlq,
        metrics=h.metrics,
        blind_index=h.blind,
        keyring=None,
    )
    await stages.driver.process_batch([record(0, event("A", "ARRIVED_HK_WAREHOUSE"))])
    assert [o for _, o in h.outcomes()] == ["sent"]
    assert await h.store.contact(NID) is None


async def test_a_send_keeps_its_event_sealed(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert await h.store.contact(NID) is not None


OPTED_OUT = ConsentSnapshot(ConsentState.OPTED_OUT, "operator:test", datetime(2026, 11, 19, tzinfo=UTC))


def dispatcher(h: Harness) -> Dispatcher:
    return Dispatcher(
        sender=h.stages.sender,
        reports=h.stages.reports,
        metrics=h.metrics,
        clock=lambda: datetime.now(UTC),
    )


@pytest.mark.parametrize("claims", [1, 2])
async def test_the_batchs_consent_look_up_decides_a_new_or_reclaimed_notification(
    h: Harness, claims: int
) -> None:
    req = ClaimRequest(NID, parse_event(event("A", "ARRIVED_HK_WAREHOUSE")), MS, "claimed")
    await h.store.claim([req])
    claim = Claimed(NID, claims, datetime(2026, 11, 20, tzinfo=UTC))
    o = await dispatcher(h).settle(req, claim, consent=OPTED_OUT, abort=asyncio.Event())
    assert o.outcome == "suppressed_opted_out"  # as the bulk look-up said (the store was not asked again)
    assert o.consent == OPTED_OUT  # and the decision keeps the consent it applied
    assert h.sender.sent == []


async def test_a_reclaimed_notification_starts_no_send_once_the_batch_is_aborted(h: Harness) -> None:
    req = ClaimRequest(NID, parse_event(event("A", "ARRIVED_HK_WAREHOUSE")), MS, "claimed")
    await h.store.claim([req])
    abort = asyncio.Event()
    abort.set()
    with pytest.raises(StoreUnavailable):
        await dispatcher(h).settle(
            req, Claimed(NID, 2, datetime(2026, 11, 20, tzinfo=UTC)), consent=NO_RECORD, abort=abort
        )
    assert h.sender.sent == []


async def test_a_reclaimed_notification_is_looked_up_from_its_first_claim(h: Harness) -> None:
    req = ClaimRequest(NID, parse_event(event("A", "ARRIVED_HK_WAREHOUSE")), MS, "claimed")
    await h.store.claim([req])
    first = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    since: list[object] = []
    deliver = h.stages.sender.deliver

    async def spied(*args: object, **kw: object) -> object:
        since.append(kw.get("reconcile_since"))
        return await deliver(*args, **kw)  # type: ignore[arg-type]

    h.stages.sender.deliver = spied  # type: ignore[method-assign]
    await dispatcher(h).settle(req, Claimed(NID, 2, first), consent=NO_RECORD, abort=asyncio.Event())
    assert since == [first]
