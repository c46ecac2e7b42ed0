"""The support look-up shows a number marked undeliverable (bad-number hygiene), in both languages."""

from __future__ import annotations

from datetime import UTC, datetime

from service.domain import reasons
from service.domain.lifecycle import State
from service.http.support_desk import timeline
from service.http.support_labels import NUMBER_MARKED, reason_label
from tests.unit.http.test_support_timeline import row

MARKED = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)


def test_a_notification_to_a_marked_number_shows_since_when_and_why() -> None:
    [shown] = timeline(
        [
            row(
                State.SENT,
                channel="email",
                reason=reasons.BAD_NUMBER,
                number_marked_at=MARKED,
                number_marked_reason="twilio_21211",
            )
        ]
    )
    assert shown["number_marked"] == {
        "at": MARKED.isoformat(),
        "time": "2026-11-20 10:30",  # Hong Kong time
        "reason": "twilio_21211",
        "label": NUMBER_MARKED._asdict(),
        "reason_label": reason_label("twilio_21211")._asdict(),
    }
    assert shown["label"]["reason"] == reason_label(reasons.BAD_NUMBER)._asdict()  # type: ignore[index]


def test_a_number_not_marked_shows_nothing() -> None:
    [shown] = timeline([row(State.DELIVERED)])
    assert shown["number_marked"] is None
