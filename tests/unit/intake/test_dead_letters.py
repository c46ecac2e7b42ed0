"""The dead-letter stage: published first, then counted and logged (coordinates and reason only)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from service.domain.model import InboundRecord
from service.domain.ports import DeadLetter
from service.intake.dead_letters import DeadLetters
from service.kafka.producer import PublishFailed
from service.metrics import Metrics
from service.testing import FakeDeadLetterSink


def letter(offset: int, reason: str = "malformed_json") -> DeadLetter:
    return DeadLetter(InboundRecord("in", 3, offset, b"k", b"x", 1), reason, "bad value", "EventRejected")


def count(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(("poison", "level"), [(False, "warning"), (True, "error")])
async def test_each_letter_is_published_counted_and_logged_with_its_coordinates(
    poison: bool, level: str
) -> None:
    sink, m = FakeDeadLetterSink(), Metrics()
    with capture_logs() as logs:
        await DeadLetters(sink, m).send([letter(7), letter(8, "invalid_event")], poison=poison)
    assert [d.record.offset for d in sink.letters] == [7, 8]
    assert count(m, "notifier_dead_letters_total", reason="malformed_json") == 1
    assert count(m, "notifier_dead_letters_total", reason="invalid_event") == 1
    assert count(m, "notifier_events_total", result="dead_lettered") == 2
    assert logs == [
        {
            "event": "event_dead_lettered",
            "log_level": level,
            "reason": reason,
            "detail": "bad value",
            "topic": "in",
            "partition": 3,
            "offset": offset,
        }
        for reason, offset in (("malformed_json", 7), ("invalid_event", 8))
    ]


async def test_poison_is_logged_as_an_error_only_when_asked() -> None:
    with capture_logs() as logs:
        await DeadLetters(FakeDeadLetterSink(), Metrics()).send([letter(1)])
    assert [e["log_level"] for e in logs] == ["warning"]


async def test_nothing_to_send_publishes_nothing() -> None:
    class Refusing(FakeDeadLetterSink):
        async def publish(self, letters: object) -> None:
            raise AssertionError("published an empty batch")

    with capture_logs() as logs:
        await DeadLetters(Refusing(), Metrics()).send([])
    assert logs == []


async def test_a_failed_publish_propagates_and_counts_nothing() -> None:
    m = Metrics()
    with pytest.raises(PublishFailed):
        await DeadLetters(FakeDeadLetterSink(fail=True), m).send([letter(1)])
    assert count(m, "notifier_events_total", result="dead_lettered") == 0
