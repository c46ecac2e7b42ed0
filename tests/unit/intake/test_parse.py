"""Intake: valid events go on with their record; the rest are dead-lettered with their reason."""

from __future__ import annotations

from datetime import UTC, datetime

from service.domain.model import InboundRecord
from service.intake.dead_letters import DeadLetters
from service.intake.parse import Intake
from service.metrics import Metrics
from service.testing import FakeDeadLetterSink
from tests.builders import event


def record(offset: int, value: bytes | None) -> InboundRecord:
    return InboundRecord("t", 0, offset, b"k", value, 1_700_000_000_000)


async def test_valid_events_go_on_and_the_rest_are_dead_lettered_with_their_reason() -> None:
    sink = FakeDeadLetterSink()
    intake = Intake(DeadLetters(sink, Metrics()), clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    recs = [record(0, event("A", "ARRIVED_HK_WAREHOUSE")), record(1, b"{not json"), record(2, None)]
    parsed = await intake.read(recs)
    assert [(rec.offset, u.event_id) for rec, u in parsed] == [(0, "A-ARRIVED_HK_WAREHOUSE-1")]
    assert [(d.record.offset, d.reason, d.error_class) for d in sink.letters] == [
        (1, "malformed_json", "EventRejected"),
        (2, "empty_value", "EventRejected"),
    ]


async def test_an_event_dated_ahead_of_the_intake_clock_is_rejected() -> None:
    """The clock bounds ``occurred_at``: an event from the future (as the clock sees it) is invalid."""
    sink = FakeDeadLetterSink()
    intake = Intake(DeadLetters(sink, Metrics()), clock=lambda: datetime(2020, 1, 1, tzinfo=UTC))
    assert await intake.read([record(0, event("A", "ARRIVED_HK_WAREHOUSE"))]) == []
    assert [d.reason for d in sink.letters] == ["invalid_event"]
