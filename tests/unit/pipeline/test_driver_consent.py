"""Each decision of a batch keeps the consent it applied, from the batch's one consent look-up."""

from __future__ import annotations

import json

from service.domain.milestones import Milestone
from service.domain.model import notification_id
from tests.builders import event
from tests.unit.pipeline.test_driver import Harness


async def test_every_decision_of_a_batch_records_its_consent_from_one_look_up() -> None:
    h = Harness()
    calls: list[list[bytes]] = []
    records = h.store.consent_records

    async def counted(subjects: list[bytes]) -> object:
        calls.append(list(subjects))
        return await records(subjects)

    async def never(subjects: list[bytes]) -> set[bytes]:  # the old per-notification question
        raise AssertionError("the batch asks for consent records once, not whether each opted out")

    h.store.consent_records = counted  # type: ignore[assignment,method-assign]
    h.store.opted_out = never  # type: ignore[method-assign]
    out, back = h.blind.phone("+85291234560"), h.blind.phone("+85291234561")
    await h.store.set_consent([out], opted_out=True, source="operator:admin-bob")
    await h.store.set_consent([back], opted_out=True, source="unsubscribe_link")
    await h.store.set_consent([back], opted_out=False, source="sms_reply:twilio")
    set_at = h.store.now

    await h.feed(
        event("OUT", "ARRIVED_HK_WAREHOUSE", phone="9123 4560"),
        event("BACK", "ARRIVED_HK_WAREHOUSE", phone="9123 4561"),
        event("NEW", "READY_FOR_PICKUP"),
        event("NEW", "ARRIVED_HK_WAREHOUSE"),  # stale: a later milestone came first
    )
    assert len(calls) == 1  # one look-up for the whole batch
    got = {(r["order_id"], r["outcome"]): r for r in (json.loads(x.payload) for x in h.receipts.published)}
    consent = {k: (r["consent_state"], r["consent_source"], r["consent_set_at"]) for k, r in got.items()}
    iso = set_at.isoformat().replace("+00:00", "Z")
    assert consent == {
        ("OUT", "suppressed_opted_out"): ("opted_out", "operator", iso),  # the kind: no staff name
        ("BACK", "sent"): ("opted_in", "sms_reply:twilio", iso),
        ("NEW", "sent"): ("no_record", None, None),
        ("NEW", "suppressed_stale"): ("no_record", None, None),
    }
    assert all("admin-bob" not in x.payload.decode() for x in h.receipts.published)
    # the store keeps each decision's snapshot as read, the operator's name included (staff see it)
    row = h.store.rows[("OUT", Milestone.ARRIVED_HK_WAREHOUSE.value)]
    assert row.outcome is not None
    assert row.outcome.consent is not None
    assert (row.outcome.consent.source, row.outcome.notification_id) == (
        "operator:admin-bob",
        notification_id("OUT", Milestone.ARRIVED_HK_WAREHOUSE),
    )
