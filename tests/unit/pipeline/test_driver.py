from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from service.compose.render import Renderer
from service.contracts import parse_event
from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderRejected,
    ProviderUnavailable,
    RecipientOptedOut,
    StoreUnavailable,
)
from service.domain.lifecycle import IllegalTransition, State
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, notification_id
from service.domain.outcome import ClaimRequest
from service.domain.references import MessageReferences
from service.metrics import Metrics
from service.pipeline.stages import build_stages
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.send.engine import DeliveryEngine, DeliveryRequest, DeliveryResult
from service.testing import (
    FakeClock,
    FakeDeadLetterSink,
    FakeEmailSender,
    FakePickups,
    FakeReceiptSink,
    FakeSmsSender,
    FakeStore,
)
from tests.builders import EMAIL, NAME, PHONE, event

REPO = Path(__file__).resolve().parents[3]


def record(offset: int, value: bytes | None, key: bytes | None = b"k") -> InboundRecord:
    return InboundRecord("t", 0, offset, key, value, 1_700_000_000_000)


class Harness:
    def __init__(self, *, foreign: bool = False, send_concurrency: int = 32) -> None:
        self.store = FakeStore()
        self.sender = FakeSmsSender(name="sms-a")
        self.backup = FakeSmsSender(name="sms-b")
        self.email = FakeEmailSender()
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.blind = BlindIndex(os.urandom(32))
        self.references = MessageReferences(self.blind.derive_key("message-reference"))
        self.receipts = FakeReceiptSink()
        self.dlq = FakeDeadLetterSink()
        self.pipeline_engine = DeliveryEngine(
            sms=[self.sender, self.backup],
            email=self.email,
            limits={},
            metrics=self.metrics,
            references=self.references,
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(1),
        )
        self.renderer = Renderer(
            REPO / "templates",
            brand="Specialized",
            contact_phone="+852 3001 2345",
            contact_email="hk@example.com",
        )
        self.keyring = Keyring({"k1": os.urandom(32)}, "k1")
        self.pickups = FakePickups()
        self.stages = build_stages(
            store=self.store,
            engine=self.pipeline_engine,
            renderer=self.renderer,
            receipts=self.receipts,
            dead_letters=self.dlq,
            metrics=self.metrics,
            blind_index=self.blind,
            keyring=self.keyring,
            allow_foreign_mobiles=foreign,
            send_concurrency=send_concurrency,
            pickups=self.pickups,
        )
        self.driver = self.stages.driver
        self.offset = 0

    async def feed(self, *values: bytes | None) -> None:
        recs = []
        for v in values:
            recs.append(record(self.offset, v))
            self.offset += 1
        await self.driver.process_batch(recs)

    def outcomes(self) -> list[tuple[str, str]]:
        return [
            (json.loads(r.payload)["milestone"], json.loads(r.payload)["outcome"])
            for r in self.receipts.published
        ]


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_duplicate_event_sends_once(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"), event("A", "ARRIVED_HK_WAREHOUSE", n=2))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    assert h.outcomes() == [("arrived_hk_warehouse", "sent")]
    assert h.sender.sent[0][0] == "+85291234567"


async def test_each_milestone_is_sent_once_in_the_customers_language(h: Harness) -> None:
    await h.feed(
        event("A", "ARRIVED_HK_WAREHOUSE"), event("A", "CUSTOMS_CLEARED"), event("A", "READY_FOR_PICKUP")
    )
    assert [m for m, _ in h.outcomes()] == ["arrived_hk_warehouse", "customs_cleared", "ready_for_pickup"]
    bodies = [body for _, body in h.sender.sent]
    assert all("Specialized" in b and "A" in b for b in bodies)
    assert "旺角" in bodies[2]


async def test_a_pickup_notice_read_after_the_pickup_is_stale_and_not_sent(h: Harness) -> None:
    await h.feed(event("A", "CUSTOMS_CLEARED"))
    await h.feed(event("A", "PICKED_UP"))
    await h.feed(event("A", "READY_FOR_PICKUP"), event("B", "READY_FOR_PICKUP"))
    assert len(h.sender.sent) == 2  # A's customs clearance, B's pickup notice
    decided = {
        (json.loads(r.payload)["order_id"], json.loads(r.payload)["milestone"]): json.loads(r.payload)[
            "outcome"
        ]
        for r in h.receipts.published
    }
    assert decided == {
        ("A", "customs_cleared"): "sent",
        ("A", "ready_for_pickup"): "suppressed_stale",
        ("B", "ready_for_pickup"): "sent",
    }


async def test_stale_milestone_is_not_sent_and_says_so(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    assert h.outcomes() == [("ready_for_pickup", "sent"), ("arrived_hk_warehouse", "suppressed_stale")]


async def test_other_statuses_are_recorded_and_notify_no_one(h: Harness) -> None:
    await h.feed(event("A", "IN_TRANSIT"))
    assert h.sender.sent == []
    assert h.receipts.published == []
    assert "A-IN_TRANSIT-1" in h.store.events


async def test_a_pickup_notifies_no_one_and_ends_the_dwell_it_observes_once(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP", occurred_at="2026-11-22T10:00:00+08:00"))
    await h.feed(
        event("A", "PICKED_UP", occurred_at="2026-11-23T16:00:00+08:00"),
        event("A", "PICKED_UP", n=2, occurred_at="2026-11-23T18:00:00+08:00"),  # a TMS re-send
    )
    await h.feed(event("A", "PICKED_UP", occurred_at="2026-11-23T16:00:00+08:00"))  # read again
    assert len(h.sender.sent) == 1
    assert h.outcomes() == [("ready_for_pickup", "sent")]
    assert {"A-PICKED_UP-1", "A-PICKED_UP-2"} <= set(h.store.events)
    assert h.store.events["A-PICKED_UP-1"][2] is None  # recorded with no milestone
    get = h.metrics.registry.get_sample_value
    assert get("notifier_pickup_dwell_seconds_count", {"place": "other"}) == 1.0
    assert get("notifier_pickup_dwell_seconds_sum", {"place": "other"}) == 30 * 3600
    assert get("notifier_events_total", {"result": "not_a_milestone"}) == 3.0


async def test_a_batch_whose_dwell_cannot_be_recorded_fails_so_it_is_read_again(h: Harness) -> None:
    h.pickups.fail_next = StoreUnavailable("database: down")
    with pytest.raises(StoreUnavailable):
        await h.feed(event("A", "PICKED_UP"))
    await h.feed(event("A", "PICKED_UP"))
    assert h.pickups.rows["A"]["picked_up_at"] is not None


async def test_invalid_phone_is_never_sent_and_the_receipt_says_why(h: Harness) -> None:
    await h.feed(
        event("A", "ARRIVED_HK_WAREHOUSE", recipient={"name": NAME, "phone": "2123 4567", "locale": "en"})
    )
    assert h.sender.sent == []
    receipt = json.loads(h.receipts.published[0].payload)
    assert receipt["outcome"] == "suppressed_invalid_recipient"
    assert receipt["reason"] == "phone_fixed_line"
    assert receipt["channel"] == "none"


async def test_malformed_events_go_to_dead_letters_and_the_rest_of_the_batch_flows(h: Harness) -> None:
    await h.feed(b"{oops", event("A", "ARRIVED_HK_WAREHOUSE"), None)
    assert [d.reason for d in h.dlq.letters] == ["malformed_json", "empty_value"]
    assert [d.record.offset for d in h.dlq.letters] == [0, 2]
    assert len(h.sender.sent) == 1


async def test_number_the_provider_calls_invalid_goes_to_email_not_to_the_other_sms_provider(
    h: Harness,
) -> None:
    h.sender.errors.append(InvalidRecipient("sms-a", "21211"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["channel"], receipt["provider"]) == ("sent", "email", "fake-email")
    assert h.backup.sent == []
    to, message = h.email.sent[0]
    assert to == EMAIL
    assert "A" in message.subject
    assert "<p" in message.html


async def test_invalid_phone_with_an_email_gets_the_email(h: Harness) -> None:
    await h.feed(
        event(
            "A", "READY_FOR_PICKUP", recipient={"name": "<b>Chan</b>", "phone": "2123 4567", "email": EMAIL}
        )
    )
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["channel"], receipt["reason"]) == (
        "sent",
        "email",
        "phone_fixed_line",
    )
    assert h.sender.sent == []
    assert h.backup.sent == []
    html = h.email.sent[0][1].html
    assert "&lt;b&gt;Chan&lt;/b&gt;" in html  # customer data is escaped in HTML


async def test_provider_outage_fails_over_to_the_next_sms_provider(h: Harness) -> None:
    h.sender.errors.extend(ProviderRejected("sms-a", "20003") for _ in range(3))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["channel"], receipt["provider"]) == ("sent", "sms", "sms-b")
    assert len(h.backup.sent) == 1


async def test_every_channel_refusing_the_message_is_a_failed_receipt_with_the_last_reason(
    h: Harness,
) -> None:
    h.sender.errors.append(ContentRejected("sms-a", "30007"))
    h.backup.errors.append(ContentRejected("sms-b", "EC_CONTENT"))
    h.email.errors.append(InvalidRecipient("fake-email", "bounce"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["reason"]) == ("failed", "fake-email_bounce")


async def test_every_provider_down_holds_the_notification_until_one_returns(h: Harness) -> None:
    # Both orders meet our account refused everywhere (e.g. rotated credentials).
    h.sender.errors.extend(ProviderRejected("sms-a", "20003") for _ in range(2))
    h.backup.errors.extend(ProviderRejected("sms-b", "401") for _ in range(2))
    h.email.errors.extend(ProviderRejected("fake-email", "403") for _ in range(2))
    first = [record(7, event("A", "CUSTOMS_CLEARED")), record(8, event("B", "CUSTOMS_CLEARED"))]
    unfinished = await h.driver.process_batch(first)
    assert unfinished == {("t", 0): 7}  # read again from the first held record
    assert h.receipts.published == []
    assert h.store.outbox == {}
    assert h.metrics.registry.get_sample_value("notifier_held_notifications_total") == 2
    assert {row.claims for row in h.store.rows.values()} == {0}  # claims given back: nothing was sent

    assert await h.driver.process_batch(first) == {}  # the providers are back
    assert sorted(o for _, o in h.outcomes()) == ["sent", "sent"]
    assert len(h.sender.sent) == 2
    assert not h.metrics.registry.get_sample_value("notifier_possible_duplicate_sends_total")


async def test_a_paused_engine_holds_what_has_not_begun(h: Harness) -> None:
    h.pipeline_engine.pause_sends()  # SIGTERM or a rebalance drain
    assert await h.driver.process_batch([record(3, event("A", "CUSTOMS_CLEARED"))]) == {("t", 0): 3}
    assert h.sender.sent == []
    assert h.receipts.published == []
    h.pipeline_engine.resume_sends()
    assert await h.driver.process_batch([record(3, event("A", "CUSTOMS_CLEARED"))]) == {}
    assert len(h.sender.sent) == 1


async def test_each_send_is_recorded_as_it_happens_not_at_the_end_of_the_batch(h: Harness) -> None:
    class Crash(Exception):
        pass

    h.sender.errors.append(ProviderRejected("sms-a", "20003"))  # one order fails over to sms-b ...
    h.backup.errors.append(Crash())  # ... where the process "crashes"; the other went out via sms-a
    with pytest.raises(Crash):
        await h.driver.process_batch(
            [record(0, event("A", "CUSTOMS_CLEARED")), record(1, event("B", "CUSTOMS_CLEARED"))]
        )
    states = {order: row.state for (order, _), row in h.store.rows.items()}
    assert sorted(states.values()) == ["claimed", "sent"]  # the send that happened is on record
    assert len(h.store.outbox) == 1


async def test_a_send_made_before_a_crash_is_found_at_the_provider_not_sent_again(h: Harness) -> None:
    milestone = Milestone.ARRIVED_HK_WAREHOUSE
    nid = notification_id("A", milestone)
    crashed = ClaimRequest(nid, parse_event(event("A", "ARRIVED_HK_WAREHOUSE")), milestone, "claimed")
    await h.store.claim([crashed])
    await h.sender.send_sms(
        "+85291234567", "body", reference=h.references.make(nid, 1)
    )  # then the process died
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["provider"]) == ("sent", "sms-a")
    assert receipt["reason"] == "found_at_provider_after_restart"
    assert not h.metrics.registry.get_sample_value("notifier_possible_duplicate_sends_total")


async def test_opted_out_at_the_provider_sends_nothing_anywhere(h: Harness) -> None:
    h.sender.errors.append(RecipientOptedOut("sms-a", "21610"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    receipt = json.loads(h.receipts.published[0].payload)
    assert receipt["outcome"] == "suppressed_opted_out"
    assert h.backup.sent == []
    assert h.email.sent == []


async def test_receipts_and_logs_carry_no_personal_data(h: Harness) -> None:
    h.sender.errors.append(ProviderUnavailable("fake-sms", "503"))
    with capture_logs() as logs:
        await h.feed(
            event("A", "ARRIVED_HK_WAREHOUSE"),
            event("B", "ARRIVED_HK_WAREHOUSE"),
            event(
                "C", "ARRIVED_HK_WAREHOUSE", recipient={"name": NAME, "phone": "2123 4567", "email": EMAIL}
            ),
            b'{"order_id": "D", "recipient": {"name": "' + NAME.encode() + b'", "phone": "91234567"}}',
        )
    assert len(h.receipts.published) == 3
    text = "\n".join(r.payload.decode() for r in h.receipts.published) + "\n" + repr(logs)
    text += h.metrics.render().decode()
    # whole values: fragments like "4567" also occur by chance in timestamps and ids
    for pii in (NAME, PHONE, "91234567", "+85291234567", EMAIL, "2123 4567", "21234567"):
        assert pii not in text


async def test_receipts_stay_in_the_outbox_when_kafka_is_down_and_the_relay_publishes_them(
    h: Harness,
) -> None:
    h.receipts.fail = True
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert h.receipts.published == []
    assert len(await h.store.unpublished_receipts()) == 1
    h.receipts.fail = False
    assert await h.stages.receipts.relay() == 1
    assert h.outcomes() == [("arrived_hk_warehouse", "sent")]
    assert await h.store.unpublished_receipts() == []


async def test_store_outage_propagates_so_the_batch_is_not_committed(h: Harness) -> None:
    h.store.fail_next = StoreUnavailable("database: down")
    with pytest.raises(StoreUnavailable):
        await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))  # the redelivered batch
    assert len(h.sender.sent) == 1


async def _crashed_claim(h: Harness, order: str) -> uuid.UUID:
    """A claim taken by an instance that died before recording the outcome."""
    milestone = Milestone.ARRIVED_HK_WAREHOUSE
    nid = notification_id(order, milestone)
    await h.store.claim(
        [ClaimRequest(nid, parse_event(event(order, "ARRIVED_HK_WAREHOUSE")), milestone, "claimed")]
    )
    return nid


def possible_duplicates(h: Harness) -> float:
    return h.metrics.registry.get_sample_value("notifier_possible_duplicate_sends_total") or 0.0


async def test_claim_left_unfinished_by_a_crash_is_sent_again_and_not_counted_when_ruled_out(
    h: Harness,
) -> None:
    await _crashed_claim(h, "A")
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    assert possible_duplicates(h) == 0  # both SMS providers said they hold no earlier send


async def test_a_resend_is_counted_when_a_provider_cannot_answer_the_look_up(h: Harness) -> None:
    await _crashed_claim(h, "A")
    h.backup.lookup_fails = True
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    assert possible_duplicates(h) == 1


async def test_a_resend_is_counted_when_an_earlier_claim_began_an_email(h: Harness) -> None:
    nid = await _crashed_claim(h, "A")
    await h.store.note_email_attempt(nid)  # email has no look-up: it may have gone out
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.sender.sent) == 1
    assert possible_duplicates(h) == 1


async def test_an_email_attempt_is_marked_before_the_email_goes_out(h: Harness) -> None:
    h.sender.errors.append(InvalidRecipient("sms-a", "21211"))  # no SMS for this number: email
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert len(h.email.sent) == 1
    [row] = h.store.rows.values()
    assert row.email_attempted  # a crash now would make a resend a possible duplicate


async def test_opted_out_recipient_gets_nothing_and_the_receipt_says_so(h: Harness) -> None:
    await h.store.set_consent([h.blind.phone("+85291234567")], opted_out=True, source="operator:test")
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    receipt = json.loads(h.receipts.published[0].payload)
    assert (receipt["outcome"], receipt["reason"]) == ("suppressed_opted_out", "opted_out")
    assert h.sender.sent == h.backup.sent == []
    assert h.email.sent == []


async def test_stop_reported_by_a_provider_is_honoured_for_the_next_event(h: Harness) -> None:
    h.sender.errors.append(RecipientOptedOut("sms-a", "21610"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    await h.feed(event("A", "CUSTOMS_CLEARED"))
    outcomes = [o for _, o in h.outcomes()]
    assert outcomes == ["suppressed_opted_out", "suppressed_opted_out"]
    assert h.store.consent_events == [(h.blind.phone("+85291234567"), "opt_out", "provider:sms-a")]
    assert h.sender.sent == h.email.sent == []


async def test_sent_sms_keeps_the_event_sealed_for_a_later_fallback(h: Harness) -> None:
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    (sealed,) = h.store.contacts.values()
    assert PHONE.encode() not in sealed.ciphertext
    assert NAME.encode() not in sealed.ciphertext


@pytest.mark.parametrize(("foreign", "outcome"), [(False, "suppressed_invalid_recipient"), (True, "sent")])
async def test_mobiles_outside_hong_kong_are_texted_only_when_configured(foreign: bool, outcome: str) -> None:
    h = Harness(foreign=foreign)
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE", recipient={"name": NAME, "phone": "+44 7911 123456"}))
    receipt = json.loads(h.receipts.published[0].payload)
    assert receipt["outcome"] == outcome
    assert [to for to, _ in h.sender.sent] == (["+447911123456"] if foreign else [])


async def test_a_claim_left_by_a_crash_is_settled_even_when_its_verdict_is_stale(h: Harness) -> None:
    await h.feed(event("A", "READY_FOR_PICKUP"))  # a later milestone is read and sent first
    milestone, late = Milestone.ARRIVED_HK_WAREHOUSE, record(h.offset, event("A", "ARRIVED_HK_WAREHOUSE"))
    update = parse_event(late.value)
    await h.store.record_events([(late, update, milestone.value)])
    await h.store.claim([ClaimRequest(notification_id("A", milestone), update, milestone, "claimed")])
    # died before recording the outcome; the redelivered event is stale, as it was the first time
    await h.driver.process_batch([late])
    assert {row.state for row in h.store.rows.values()} == {"sent", "suppressed_stale"}
    assert len(h.sender.sent) == 1


@pytest.mark.parametrize("slots", [1, 2, 3])
async def test_a_send_that_cannot_be_recorded_stops_the_batch_from_sending_more(slots: int) -> None:
    h = Harness(send_concurrency=slots)

    async def database_gone(*_: object, **__: object) -> None:
        raise StoreUnavailable("database: ConnectionDoesNotExistError")

    h.store.finish = database_gone  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await h.driver.process_batch([record(i, event(f"O{i}", "CUSTOMS_CLEARED")) for i in range(8)])
    # A send keeps its slot until it is recorded: the sends left unrecorded are those in flight when
    # the record failed, at most the slots; the others were not started.
    assert len(h.sender.sent) == slots


async def test_a_record_that_fails_alone_with_the_database_up_is_dead_lettered_and_the_rest_goes_on(
    h: Harness,
) -> None:
    claim = h.store.claim

    async def claim_rejecting_poison(requests: list[ClaimRequest]) -> list[object]:
        if any(r.update.order_id == "POISON" for r in requests):
            raise StoreUnavailable("database: DataError")  # e.g. a value the schema refuses
        return await claim(requests)  # type: ignore[arg-type]

    h.store.claim = claim_rejecting_poison  # type: ignore[assignment]
    batch = [record(0, event("A", "CUSTOMS_CLEARED")), record(1, event("POISON", "CUSTOMS_CLEARED"))]
    with pytest.raises(StoreUnavailable):
        await h.driver.process_batch(batch)
    assert await h.driver.process_one_by_one(batch, attempts=5) == {}
    assert [(d.record.offset, d.reason, d.attempts) for d in h.dlq.letters] == [(1, "processing_failed", 6)]
    assert h.dlq.letters[0].detail == "failed 6 times: StoreUnavailable"
    assert h.outcomes() == [("customs_cleared", "sent")]


async def test_with_the_database_down_nothing_is_taken_for_poison(h: Harness) -> None:
    h.store.fail_next = StoreUnavailable("database: down")
    h.store.down = True
    with pytest.raises(StoreUnavailable):
        await h.driver.process_one_by_one([record(0, event("A", "CUSTOMS_CLEARED"))], attempts=5)
    assert h.dlq.letters == []


def _sample(h: Harness, metric: str, labels: dict[str, str]) -> float:
    return h.metrics.registry.get_sample_value(metric, labels) or 0.0


async def test_an_sms_over_the_segment_cap_even_shortened_goes_by_email(h: Harness) -> None:
    h.renderer.max_sms_segments = 1
    await h.feed(event("A", "READY_FOR_PICKUP"))
    assert h.sender.sent == []
    assert h.backup.sent == []
    assert len(h.email.sent) == 1
    (receipt,) = [json.loads(r.payload) for r in h.receipts.published]
    assert (receipt["outcome"], receipt["channel"], receipt["reason"]) == ("sent", "email", "sms_too_long")
    assert _sample(h, "notifier_sms_shortened_total", {"cut": "too_long"}) == 1


async def test_an_sms_over_the_cap_without_an_email_address_fails_with_its_reason(h: Harness) -> None:
    h.renderer.max_sms_segments = 1
    await h.feed(event("A", "READY_FOR_PICKUP", recipient={"name": NAME, "phone": PHONE, "locale": "zh-HK"}))
    assert h.sender.sent == []
    assert h.email.sent == []
    (receipt,) = [json.loads(r.payload) for r in h.receipts.published]
    assert (receipt["outcome"], receipt["reason"]) == ("failed", "sms_too_long")


async def test_a_shortened_sms_is_sent_and_counted(h: Harness) -> None:
    h.renderer.max_sms_segments = 3  # 4 segments with this name in a Chinese SMS
    long_name = "Christopher Alexander Maximilian Bartholomew Wong-Montgomery-Fitzgerald"
    await h.feed(
        event("A", "READY_FOR_PICKUP", recipient={"name": long_name, "phone": PHONE, "locale": "zh-HK"})
    )
    (body,) = [b for _, b in h.sender.sent]
    assert long_name not in body
    assert h.outcomes() == [("ready_for_pickup", "sent")]
    assert _sample(h, "notifier_sms_shortened_total", {"cut": "name"}) == 1


async def test_hostile_events_are_dead_lettered_with_their_reason(h: Harness) -> None:
    await h.feed(
        event("A", "READY_FOR_PICKUP", occurred_at=1_763_600_400),
        event("B", "ARRIVED_HK_WAREHOUSE", occurred_at="9999-12-31T23:59:59-01:00"),
        event("C", "ARRIVED_HK_WAREHOUSE", bike_model="Tarmac\u001b[31m"),
        event("D", "ARRIVED_HK_WAREHOUSE"),
    )
    assert [(d.record.offset, d.reason, d.detail) for d in h.dlq.letters] == [
        (0, "invalid_event", "occurred_at: datetime_not_rfc3339"),
        (1, "invalid_event", "occurred_at: datetime_not_rfc3339"),
        (2, "invalid_event", "bike_model: string_pattern_mismatch"),
    ]
    assert h.outcomes() == [("arrived_hk_warehouse", "sent")]


async def test_an_outcome_the_life_cycle_does_not_allow_is_refused_before_it_is_recorded(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def delivered_at_once(req: DeliveryRequest) -> DeliveryResult:  # no send: nothing to deliver
        return DeliveryResult(State.DELIVERED, "sms", "sms-a", "SM1", "ref")

    monkeypatch.setattr(h.pipeline_engine, "deliver", delivered_at_once)
    with pytest.raises(IllegalTransition, match="no event reaches 'delivered'"):
        await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    assert (h.store.outbox, h.receipts.published) == ({}, [])
    assert [r.state for r in h.store.rows.values()] == [State.CLAIMED]  # left to be claimed again


async def test_poison_is_dead_lettered_as_an_error_with_its_class(h: Harness) -> None:
    async def failing(requests: list[ClaimRequest]) -> list[object]:
        raise RuntimeError("a value the code cannot take")

    h.store.claim = failing  # type: ignore[assignment]
    with capture_logs() as logs:
        await h.driver.process_one_by_one([record(4, event("A", "CUSTOMS_CLEARED"))], attempts=2)
    assert [(d.reason, d.detail, d.error_class, d.attempts) for d in h.dlq.letters] == [
        ("processing_failed", "failed 3 times: RuntimeError", "RuntimeError", 3)
    ]
    assert [e["log_level"] for e in logs if e["event"] == "event_dead_lettered"] == ["error"]


async def test_one_by_one_skips_only_the_partition_behind_a_held_record(h: Harness) -> None:
    h.sender.errors.append(ProviderRejected("sms-a", "20003"))  # the first notification is held ...
    h.backup.errors.append(ProviderRejected("sms-b", "401"))
    h.email.errors.append(ProviderRejected("fake-email", "403"))
    other = InboundRecord("t", 1, 0, b"k", event("C", "CUSTOMS_CLEARED"), 1_700_000_000_000)
    batch = [record(5, event("A", "CUSTOMS_CLEARED")), record(6, event("B", "CUSTOMS_CLEARED")), other]
    assert await h.driver.process_one_by_one(batch, attempts=1) == {("t", 0): 5}
    assert h.outcomes() == [("customs_cleared", "sent")]  # ... B waits behind it; C, elsewhere, goes
    assert json.loads(h.receipts.published[0].payload)["order_id"] == "C"


async def test_a_held_notification_is_logged_with_its_reason_and_a_drain_is_not(h: Harness) -> None:
    h.sender.errors.append(ProviderRejected("sms-a", "20003"))
    h.backup.errors.append(ProviderRejected("sms-b", "401"))
    h.email.errors.append(ProviderRejected("fake-email", "403"))
    with capture_logs() as logs:
        await h.driver.process_batch([record(0, event("A", "CUSTOMS_CLEARED"))])
    held = [e for e in logs if e["event"] == "notifications_held"]
    assert len(held) == 1
    assert (held[0]["log_level"], held[0]["count"]) == ("warning", 1)
    assert held[0]["reason"] not in (None, "draining")
    assert _sample(h, "notifier_end_to_end_seconds_count", {}) == 0  # held: not decided yet
    assert [(e["notified"], e["held"]) for e in logs if e["event"] == "batch_done"] == [(0, 1)]

    h.pipeline_engine.pause_sends()
    with capture_logs() as logs:
        await h.driver.process_batch([record(1, event("B", "CUSTOMS_CLEARED"))])
    assert [e for e in logs if e["event"] == "notifications_held"] == []


async def test_a_batch_is_logged_and_timed_from_each_event_reaching_kafka(h: Harness) -> None:
    now_ms = int(time.time() * 1000)
    batch = [
        InboundRecord("t", 0, 0, b"k", event("A", "CUSTOMS_CLEARED"), now_ms - 2000),
        InboundRecord("t", 0, 1, b"k", event("B", "CUSTOMS_CLEARED"), now_ms),
        record(2, b"{oops"),
        record(3, event("C", "IN_TRANSIT")),
    ]
    with capture_logs() as logs:
        await h.driver.process_batch(batch)
    done = [e for e in logs if e["event"] == "batch_done"]
    assert len(done) == 1
    seconds = done[0].pop("seconds")
    assert done[0] == {
        "event": "batch_done",
        "log_level": "info",
        "records": 4,
        "dead_lettered": 1,
        "notified": 2,
        "held": 0,
    }
    assert isinstance(seconds, float)
    assert 0 < seconds < 5
    assert seconds == round(seconds, 4)
    assert _sample(h, "notifier_end_to_end_seconds_count", {}) == 2
    assert 2.0 <= _sample(h, "notifier_end_to_end_seconds_sum", {}) < 3.0
    assert 0 < _sample(h, "notifier_batch_seconds_sum", {}) < 5


async def test_a_failed_send_propagates_only_once_the_batchs_other_sends_are_recorded(h: Harness) -> None:
    class Crash(Exception):
        pass

    ms = Milestone.CUSTOMS_CLEARED
    gate, send = asyncio.Event(), h.sender.send_sms

    async def crash_a_hold_b(to: str, body: str, *, reference: str) -> object:
        parsed = h.references.parse(reference)
        if parsed is not None and parsed[0] == notification_id("A", ms):
            raise Crash
        await gate.wait()
        return await send(to, body, reference=reference)

    h.sender.send_sms = crash_a_hold_b  # type: ignore[assignment,method-assign]
    batch = [record(0, event("A", "CUSTOMS_CLEARED")), record(1, event("B", "CUSTOMS_CLEARED"))]
    task = asyncio.create_task(h.driver.process_batch(batch))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not task.done()  # A failed, B is still sending: the failure waits for it
    gate.set()
    with pytest.raises(Crash):
        await task
    assert h.store._by_id()[notification_id("B", ms)].state == "sent"


async def test_a_notification_held_after_a_send_of_unknown_fate_keeps_its_claim(h: Harness) -> None:
    h.sender.swallowed = 5  # sms-a takes it but the answer is lost, and cannot say whether it has it
    h.sender.lookup_fails = True
    h.backup.errors.extend(ProviderRejected("sms-b", "401") for _ in range(5))
    h.email.errors.extend(ProviderRejected("fake-email", "403") for _ in range(5))
    assert await h.driver.process_batch([record(0, event("A", "CUSTOMS_CLEARED"))]) == {("t", 0): 0}
    assert h.receipts.published == []
    # Kept, not given back: read again, it is a re-claim, which looks for the earlier send first.
    assert [(row.state, row.claims) for row in h.store.rows.values()] == [("claimed", 1)]


def _decisions(h: Harness) -> dict[str, float]:
    get = h.metrics.registry.get_sample_value
    return {
        d: get("notifier_decisions_total", {"decision": d}) or 0.0
        for d in ("sent", "failed", "suppressed_stale", "suppressed_invalid_recipient")
    }


async def test_each_notification_is_one_decision_however_many_receipts_it_gets(h: Harness) -> None:
    # The SLI counts decisions: a send and its later delivery report are one, not two successes.
    await h.feed(event("A", "READY_FOR_PICKUP"))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"), event("A", "READY_FOR_PICKUP", n=2))  # stale, duplicate
    h.sender.errors.append(ContentRejected("sms-a", "30007"))
    h.backup.errors.append(ContentRejected("sms-b", "EC_CONTENT"))
    h.email.errors.append(InvalidRecipient("fake-email", "bounce"))
    await h.feed(event("B", "ARRIVED_HK_WAREHOUSE"))
    assert _decisions(h) == {"sent": 1, "failed": 1, "suppressed_stale": 1, "suppressed_invalid_recipient": 0}
    assert await h.stages.reports.report("sms-a", h.sender.references[0], delivered=True) == "delivered"
    assert _decisions(h)["sent"] == 1  # the report is a receipt, not a decision
    receipts = h.metrics.registry.get_sample_value
    assert receipts("notifier_notifications_total", {"outcome": "delivered", "channel": "sms"}) == 1
    # Held (no provider up) is no decision yet.
    h.sender.errors.extend(ProviderRejected("sms-a", "20003") for _ in range(2))
    h.backup.errors.extend(ProviderRejected("sms-b", "401") for _ in range(2))
    h.email.errors.extend(ProviderRejected("fake-email", "403") for _ in range(2))
    await h.feed(event("C", "CUSTOMS_CLEARED"))
    assert sum(_decisions(h).values()) == 3


async def test_a_send_that_cannot_be_recorded_stops_every_batch_in_flight_from_sending_more() -> None:
    h = Harness(send_concurrency=2)

    async def database_gone(*_: object, **__: object) -> None:
        await asyncio.sleep(0.01)  # both batches are sending by now
        raise StoreUnavailable("database: ConnectionDoesNotExistError")

    h.store.finish = database_gone  # type: ignore[method-assign]
    first = [record(i, event(f"O{i}", "CUSTOMS_CLEARED")) for i in range(8)]
    second = [record(10 + i, event(f"P{i}", "CUSTOMS_CLEARED")) for i in range(8)]
    results = await asyncio.gather(
        h.driver.process_batch(first), h.driver.process_batch(second), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)
    # The slots are shared and so is the stop: in flight when the record failed, at most the slots.
    assert len(h.sender.sent) == 2
    h.store.finish = type(h.store).finish.__get__(h.store)  # type: ignore[method-assign]
    await h.driver.process_batch([record(30, event("Q", "CUSTOMS_CLEARED"))])  # the next one sends again
    assert len(h.sender.sent) == 3
