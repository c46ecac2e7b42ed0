"""The ``NotificationStore`` port's contract: claims, places, outcomes, reports, consent, the jobs'
leases and the receipt outbox. Run on ``FakeStore`` (tests/unit/test_store_contract.py) and on
``PostgresStore`` (tests/integration/test_store_contract.py).

The ordering and lease rules of publishing receipts across instances are in
``tests/contracts/outbox.py`` (``OutboxRules``), run on both stores the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, ShipmentUpdate, notification_id
from service.domain.outcome import Lease, OutboxRow, Outcome, SealedContact
from service.domain.ports import NotificationStore
from tests.builders import claim, update

M = Milestone.ARRIVED_HK_WAREHOUSE
LATER = Milestone.CUSTOMS_CLEARED


def nid(order: str, milestone: Milestone = M) -> uuid.UUID:
    return notification_id(order, milestone)


def sent(order: str, channel: str = "sms", reference: str | None = None) -> Outcome:
    return Outcome(
        nid(order),
        update(order),
        M,
        "sent",
        channel,  # type: ignore[arg-type]
        datetime.now(UTC),
        provider="twilio" if channel == "sms" else "sendgrid",
        provider_message_id=f"SM{order}",
        reference=reference or f"{order}.1",
    )


def row(order: str, payload: bytes = b"{}") -> OutboxRow:
    return OutboxRow(uuid.uuid4(), nid(order), order, payload)


def read(
    offset: int, order: str, status: str, event_id: str
) -> tuple[InboundRecord, ShipmentUpdate, str | None]:
    milestone = {"ARRIVED_HK_WAREHOUSE": M, "CUSTOMS_CLEARED": LATER}.get(status)
    return (
        InboundRecord("t", 0, offset, order.encode(), b"{}", 0),
        update(order, status, event_id=event_id),
        milestone.value if milestone else None,
    )


class NotificationStoreContract:
    """What every ``NotificationStore`` does. Subclasses give ``subject`` (an empty store) and
    ``advance`` (let time pass for every lease and due time the store keeps)."""

    @pytest.fixture
    def subject(self) -> NotificationStore:
        raise NotImplementedError

    async def advance(self, store: NotificationStore, seconds: float) -> None:
        raise NotImplementedError

    async def test_ping_answers_while_the_store_is_up(self, subject: NotificationStore) -> None:
        assert await subject.ping() is True

    # --- claims ---------------------------------------------------------------------------------

    async def test_a_pair_is_granted_once_and_an_unfinished_claim_again_with_its_count(
        self, subject: NotificationStore
    ) -> None:
        first = await subject.claim([claim("A"), claim("B")])
        assert sorted((c.notification_id, c.claims) for c in first) == sorted([(nid("A"), 1), (nid("B"), 1)])
        await self.advance(subject, 5)
        [again] = await subject.claim([claim("A")])  # A never finished: a crash mid-send
        assert (again.notification_id, again.claims) == (nid("A"), 2)
        assert (
            again.first_claimed_at == next(c for c in first if c.notification_id == nid("A")).first_claimed_at
        )
        await subject.finish([sent("B")], [row("B")])
        assert await subject.claim([claim("B")]) == []  # decided: a duplicate from now on
        assert await subject.claim([]) == []

    async def test_a_stale_verdict_is_claimed_like_any_other_until_its_outcome_is_recorded(
        self, subject: NotificationStore
    ) -> None:
        assert [c.claims for c in await subject.claim([claim("C", state="suppressed_stale")])] == [1]
        assert [c.claims for c in await subject.claim([claim("C", state="suppressed_stale")])] == [2]
        stale = Outcome(nid("C"), update("C"), M, "suppressed_stale", "none", datetime.now(UTC))
        await subject.finish([stale], [row("C")])
        assert await subject.claim([claim("C", state="suppressed_stale")]) == []
        target = await subject.delivery_target(nid("C"))
        assert target is not None
        assert (target.state, target.channel) == ("suppressed_stale", "none")

    async def test_a_released_claim_is_granted_again_as_a_first_claim(
        self, subject: NotificationStore
    ) -> None:
        await subject.claim([claim("A"), claim("B")])
        await subject.release([nid("A")])
        await subject.release([nid("A")])  # never below no claim at all
        await subject.release([])
        assert [(c.notification_id, c.claims) for c in await subject.claim([claim("A")])] == [(nid("A"), 1)]
        await subject.finish([sent("B")], [row("B")])
        await subject.release([nid("B")])  # decided: nothing to give back
        assert await subject.claim([claim("B")]) == []

    async def test_a_re_claim_says_whether_an_earlier_claim_began_an_email(
        self, subject: NotificationStore
    ) -> None:
        first = await subject.claim([claim("A"), claim("B")])
        assert not any(c.email_attempted for c in first)
        await subject.note_email_attempt(nid("A"))
        await subject.note_email_attempt(nid("A"))  # once is enough; again changes nothing
        await subject.note_email_attempt(nid("Z"))  # unknown: nothing to note
        again = {c.notification_id: c for c in await subject.claim([claim("A"), claim("B")])}
        assert again[nid("A")].email_attempted
        assert not again[nid("B")].email_attempted

    # --- places in the input ------------------------------------------------------------------------

    async def test_each_pair_keeps_the_place_of_its_first_event_in_reading_order(
        self, subject: NotificationStore
    ) -> None:
        await subject.record_events(
            [
                read(0, "A", "CUSTOMS_CLEARED", "A-2"),
                read(1, "A", "ARRIVED_HK_WAREHOUSE", "A-1"),
                read(2, "B", "IN_TRANSIT", "B-0"),  # notifies no one: no place of a milestone
            ]
        )
        places = await subject.first_reads(["A", "B"])
        assert set(places) == {("A", LATER), ("A", M)}
        assert places[("A", LATER)] < places[("A", M)]
        # read again (a crash, a replay) and a TMS re-send under a new event id: first places stay
        await subject.record_events([read(3, "A", "ARRIVED_HK_WAREHOUSE", "A-1")])
        await subject.record_events([])
        await subject.record_events([read(4, "A", "CUSTOMS_CLEARED", "A-2b")])
        assert await subject.first_reads(["A", "B"]) == places
        assert await subject.first_reads(["B", "C"]) == {}
        assert await subject.first_reads([]) == {}

    async def test_the_first_collection_of_each_order_has_its_place_in_the_input(
        self, subject: NotificationStore
    ) -> None:
        await subject.record_events(
            [
                read(0, "A", "ARRIVED_HK_WAREHOUSE", "A-1"),
                read(1, "A", "PICKED_UP", "A-p1"),
                read(2, "B", "IN_TRANSIT", "B-0"),  # no collection
                read(3, "A", "PICKED_UP", "A-p2"),  # a re-send: the first place stays
            ]
        )
        collected = await subject.first_collections(["A", "B", "C"])
        assert set(collected) == {"A"}
        assert collected["A"] > (await subject.first_reads(["A"]))[("A", M)]
        await subject.record_events([read(4, "A", "PICKED_UP", "A-p1")])  # read again
        assert await subject.first_collections(["A"]) == collected
        assert await subject.first_collections([]) == {}

    async def test_a_pair_known_only_from_its_notification_was_read_before_every_event(
        self, subject: NotificationStore
    ) -> None:
        await subject.record_events([read(0, "A", "CUSTOMS_CLEARED", "A-2")])
        await subject.claim([claim("A")])  # its event A-e1 was never recorded
        places = await subject.first_reads(["A"])
        assert places[("A", M)] == 0
        assert places[("A", LATER)] > 0

    # --- outcomes -------------------------------------------------------------------------------

    async def test_an_outcome_is_recorded_with_its_receipts_and_the_first_sealed_contact(
        self, subject: NotificationStore
    ) -> None:
        await subject.claim([claim("A")])
        receipt = row("A", b'{"outcome": "sent"}')
        contact = SealedContact(nid("A"), "k1", b"sealed-1")
        await subject.finish([sent("A")], [receipt], [contact])
        await subject.finish([sent("A")], [receipt], [SealedContact(nid("A"), "k2", b"sealed-2")])  # a retry
        target = await subject.delivery_target(nid("A"))
        assert target is not None
        assert (target.notification_id, target.milestone, target.state, target.channel) == (nid("A"), M, "sent", "sms")  # fmt: skip
        assert (target.provider, target.reference, target.order_id, target.waybill) == (
            "twilio",
            "A.1",
            "A",
            "WB",
        )
        assert (target.event_id, target.occurred_at, target.fallback_attempts) == ("A-e1", update("A").occurred_at, 0)  # fmt: skip
        assert await subject.contact(nid("A")) == contact
        assert await subject.unpublished_receipts() == [receipt]  # a retried write adds no second one

    async def test_nothing_is_known_of_a_notification_never_claimed(self, subject: NotificationStore) -> None:
        assert await subject.delivery_target(nid("Z")) is None
        assert await subject.contact(nid("Z")) is None
        assert await subject.unpublished_receipts() == []

    async def test_finishing_no_outcome_writes_no_receipt(self, subject: NotificationStore) -> None:
        await subject.claim([claim("A")])
        await subject.finish([], [row("A")])
        assert await subject.unpublished_receipts() == []

    # --- delivery reports -----------------------------------------------------------------------------

    async def test_a_report_applies_once_and_only_to_the_attempt_it_names(
        self, subject: NotificationStore
    ) -> None:
        await subject.claim([claim("A"), claim("B")])
        first = row("A")
        await subject.finish([sent("A")], [first])
        assert not await subject.record_delivery(
            nid("A"), "A.0", "delivered", None, row("A")
        )  # another attempt
        assert not await subject.record_delivery(nid("B"), "B.1", "delivered", None, row("B"))  # not sent yet
        assert not await subject.record_delivery(nid("Z"), "Z.1", "delivered", None, row("Z"))  # unknown
        delivered = row("A")
        assert await subject.record_delivery(nid("A"), "A.1", "delivered", None, delivered)
        assert not await subject.record_delivery(nid("A"), "A.1", "undelivered", "x", row("A"))  # repeated
        target = await subject.delivery_target(nid("A"))
        assert target is not None
        assert target.state == "delivered"
        assert await subject.unpublished_receipts() == [first, delivered]  # refused reports wrote none

    async def test_reports_held_before_their_send_is_recorded_are_taken_once(
        self, subject: NotificationStore
    ) -> None:
        await subject.hold_report("r1", "twilio", True, None)
        await subject.hold_report("r1", "twilio", True, "later")  # the same report again: first kept
        await subject.hold_report("r1", "twilio", False, "30003")
        await subject.hold_report("r2", "infobip", True, None)
        taken = await subject.take_reports(["r1", "r9"])
        assert sorted((r.reference, r.provider, r.delivered, r.code) for r in taken) == [
            ("r1", "twilio", False, "30003"),
            ("r1", "twilio", True, None),
        ]
        assert await subject.take_reports(["r1"]) == []
        assert await subject.take_reports([]) == []
        assert [r.reference for r in await subject.take_reports(["r2"])] == ["r2"]

    # --- email fallbacks ----------------------------------------------------------------------------------

    async def test_an_owed_fallback_is_leased_to_one_taker_until_its_lease_runs_out(
        self, subject: NotificationStore
    ) -> None:
        await subject.claim([claim("A"), claim("B")])
        await subject.finish([sent("A"), sent("B")], [row("A"), row("B")])
        assert await subject.record_delivery(
            nid("A"), "A.1", "undelivered", "30003", row("A"), fallback_in_s=0
        )
        assert await subject.record_delivery(
            nid("B"), "B.1", "undelivered", "30003", row("B"), fallback_in_s=30
        )
        [due] = await subject.due_fallbacks(10, lease_s=60)
        assert (due.notification_id, due.state, due.fallback_attempts) == (nid("A"), "undelivered", 2)
        assert await subject.due_fallbacks(10, lease_s=60) == []  # leased; B is not due yet
        await self.advance(subject, 45)
        assert [t.notification_id for t in await subject.due_fallbacks(10, lease_s=60)] == [nid("B")]
        await self.advance(subject, 61)  # the taker of both died: their leases ran out
        again = await subject.due_fallbacks(1, lease_s=60)
        assert [(t.notification_id, t.fallback_attempts) for t in again] == [
            (nid("A"), 3)
        ]  # earliest due first
        await subject.fallback_later(nid("A"), None)  # no longer owed
        await subject.fallback_later(nid("B"), 0)
        assert [t.notification_id for t in await subject.due_fallbacks(10, lease_s=60)] == [nid("B")]
        await self.advance(subject, 3600)
        await subject.finish([sent("B", "email", "B.2")], [row("B")])  # the fallback was sent
        await subject.fallback_later(nid("B"), 0)  # decided: this changes nothing
        assert await subject.due_fallbacks(10, lease_s=60) == []

    # --- status look-ups ------------------------------------------------------------------------------------

    async def test_sms_sends_without_a_final_status_are_leased_for_look_ups(
        self, subject: NotificationStore
    ) -> None:
        await subject.claim([claim(o) for o in ("S1", "S2", "S3", "E", "D")])
        outcomes = [sent("S1"), sent("S2"), sent("S3"), sent("E", "email"), sent("D")]
        await subject.finish(outcomes, [row(o.update.order_id) for o in outcomes])
        assert await subject.record_delivery(nid("D"), "D.1", "delivered", None, row("D"))
        assert await subject.due_status_checks(10, lease_s=60, after_s=30) == []  # too early
        await self.advance(subject, 31)
        first = await subject.due_status_checks(2, lease_s=60, after_s=30)
        second = await subject.due_status_checks(10, lease_s=60, after_s=30)
        assert len(first) == 2
        # each SMS still 'sent' once, to one taker; not the email, not the delivered one
        taken = {a.notification_id: a for a in [*first, *second]}
        assert sorted(taken) == sorted(nid(o) for o in ("S1", "S2", "S3"))
        a = taken[nid("S1")]
        assert (a.message_id, a.checks, a.target.provider, a.target.reference) == (
            "SMS1",
            1,
            "twilio",
            "S1.1",
        )
        assert isinstance(a.sent_at, datetime)
        assert await subject.due_status_checks(10, lease_s=60, after_s=30) == []  # leased
        await subject.status_check_later(nid("S1"), 0)
        await subject.status_given_up(nid("S2"))
        await subject.status_check_later(nid("S3"), 3600)
        [again] = await subject.due_status_checks(10, lease_s=60, after_s=30)
        assert (again.notification_id, again.checks) == (nid("S1"), 2)
        await subject.status_check_later(nid("S2"), 0)  # given up: no more look-ups
        await self.advance(subject, 61)  # the S1 look-up's taker died: its lease ran out
        assert [x.notification_id for x in await subject.due_status_checks(10, lease_s=60, after_s=30)] == [nid("S1")]  # fmt: skip

    async def test_a_send_s_look_ups_are_counted_from_when_it_was_first_recorded(
        self, subject: NotificationStore
    ) -> None:
        await subject.claim([claim("A"), claim("B")])
        await subject.finish([sent("A"), sent("B")], [row("A"), row("B")])
        await self.advance(subject, 20)
        await subject.finish([sent("A")], [])  # the same send recorded again (a retried write)
        await subject.finish([sent("B", reference="B.2")], [])  # another attempt: its clock starts now
        await self.advance(subject, 15)
        assert [a.notification_id for a in await subject.due_status_checks(10, lease_s=60, after_s=30)] == [
            nid("A")
        ]

    # --- consent ----------------------------------------------------------------------------------------------

    async def test_consent_changes_are_counted_once_per_subject(self, subject: NotificationStore) -> None:
        a, b, c = b"subject-a", b"subject-b", b"subject-c"
        assert await subject.set_consent([a, b, b], opted_out=True, source="customer") == 2
        assert await subject.set_consent([a], opted_out=True, source="operator") == 0
        assert await subject.opted_out([a, b, c]) == {a, b}
        assert await subject.set_consent([a, a, c], opted_out=False, source="operator") == 1
        assert await subject.opted_out([a, b, c]) == {b}
        assert await subject.set_consent([], opted_out=True, source="customer") == 0
        assert await subject.opted_out([]) == set()

    async def test_consent_records_give_each_subjects_opt_out_else_its_latest_opt_in(
        self, subject: NotificationStore
    ) -> None:
        a, b, c = b"subject-a", b"subject-b", b"subject-c"
        await subject.set_consent([a, b], opted_out=True, source="unsubscribe_link", order_id="SO-1")
        await subject.set_consent([b], opted_out=False, source="sms_reply:twilio")
        found = await subject.consent_records([a, b, c, a])
        assert set(found) == {a, b}  # c has no record: never opted out
        assert (found[a].opted_out, found[a].source) == (True, "unsubscribe_link")
        assert (found[b].opted_out, found[b].source) == (False, "sms_reply:twilio")
        assert found[b].set_at >= found[a].set_at
        await subject.set_consent([b], opted_out=True, source="operator:amy")  # out again: the opt-out
        again = await subject.consent_records([b])
        assert (again[b].opted_out, again[b].source) == (True, "operator:amy")
        assert await subject.consent_records([]) == {}

    # --- the receipt outbox ---------------------------------------------------------------------------------------

    async def test_receipts_are_taken_by_one_lease_at_a_time_in_the_order_written(
        self, subject: NotificationStore
    ) -> None:
        one, two = Lease("one", 60), Lease("two", 60)
        await subject.claim([claim("A"), claim("B")])
        a1, a2, b1 = row("A"), row("A"), row("B")
        await subject.finish([sent("A")], [a1])  # born free: no lease given
        assert await subject.record_delivery(nid("A"), "A.1", "delivered", None, a2)
        await subject.finish([sent("B")], [b1])
        assert await subject.take_receipts(one) == [a1, a2, b1]
        assert await subject.take_receipts(two) == []
        assert await subject.take_receipts(two, [nid("A")]) == []
        assert await subject.take_receipts(one, []) == []
        assert await subject.complete_receipts(one, [a1]) == [a2]  # still to publish, still ours
        await subject.release_receipts(one, [b1.receipt_id])
        await subject.release_receipts(two, [a2.receipt_id])  # not theirs: changes nothing
        assert await subject.take_receipts(two) == [b1]
        await self.advance(subject, 61)
        assert await subject.take_receipts(two, [nid("A")]) == [a2]  # the lease of "one" ran out
        assert await subject.complete_receipts(one, [a2]) == []  # taken over: not marked by "one"
        assert await subject.unpublished_receipts() == [a2, b1]
        assert await subject.complete_receipts(two, [a2, b1]) == []
        assert await subject.unpublished_receipts() == []
        assert await subject.complete_receipts(two, []) == []

    async def test_a_receipt_born_leased_waits_for_its_writer_and_the_relay_takes_few_at_a_time(
        self, subject: NotificationStore
    ) -> None:
        writer, relay = Lease("writer", 60), Lease("relay", 60)
        await subject.claim([claim(o) for o in ("A", "B", "C")])
        a, b, c = row("A"), row("B"), row("C")
        await subject.finish([sent("A")], [a], lease=writer)
        await subject.finish([sent("B"), sent("C")], [b, c])
        assert await subject.take_receipts(relay, limit=1) == [b]  # A is its writer's
        assert await subject.take_receipts(writer, [nid("A"), nid("B")]) == [a]  # B is the relay's now
        assert await subject.record_delivery(nid("C"), "C.1", "delivered", None, row("C"), lease=writer)
        # C's head is free: whoever takes it takes the rows behind it too, whoever wrote them
        assert [r.order_id for r in await subject.take_receipts(relay)] == ["C", "C"]
        assert await subject.take_receipts(writer, [nid("C")]) == []
        assert [r.order_id for r in await subject.unpublished_receipts(limit=2)] == ["A", "B"]
