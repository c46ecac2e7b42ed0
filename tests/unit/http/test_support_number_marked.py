"""The support look-up shows a number marked undeliverable (bad-number hygiene), in both languages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from service.domain import reasons
from service.domain.lifecycle import State
from service.http.staff_pages import StaffPages
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


def test_the_page_shows_the_mark_in_both_languages() -> None:
    pages = StaffPages(Path(__file__).resolve().parents[3] / "templates", {"brand": "Specialized"})
    rows = timeline(
        [row(State.SENT, channel="email", number_marked_at=MARKED, number_marked_reason="twilio_21211")]
    )
    response = pages.page(
        "cs_search",
        staff=SimpleNamespace(name="agent", is_admin=False),
        q="SO-1",
        rows=rows,
        order_id="SO-1",
        waybill="SF1",
        masked_phone="+852 ****4567",
        masked_email="c***@example.com",
    )
    html = response.text or ""
    assert 'id="number-marked-ready_for_pickup"' in html
    assert NUMBER_MARKED.zh in html
    assert NUMBER_MARKED.en in html
    assert "2026-11-20 10:30" in html
