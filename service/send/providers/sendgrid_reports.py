"""What SendGrid's Event Webhook tells us, parsed (``parse_events``), with SendGrid's event
vocabulary and the time window an event's date must lie in (``fresh``). Pure: bytes and the time
in, ``service.domain.report`` values out."""

from __future__ import annotations

from typing import Final

from service.domain.errors import MalformedReport
from service.domain.report import DeliveryReport, entry_text, json_document, report_code, report_reference
from service.domain.status_check import Answer

PROVIDER: Final = "sendgrid"

#: Event types that are a final status of the email; any other (processed, deferred, open,
#: click...) says nothing we act on.
FINAL_EVENTS: Final[dict[str, Answer]] = {
    "delivered": Answer.DELIVERED,
    "bounce": Answer.UNDELIVERED,
    "dropped": Answer.UNDELIVERED,
}


def fresh(stamp: str | float, now: float, *, past_s: float, future_s: float) -> bool:
    """Whether a Unix time (a number, or its decimal text) lies within [now - past, now + future]."""
    try:
        at = float(stamp)
    except ValueError:
        return False
    return now - past_s <= at <= now + future_s


def parse_events(body: bytes, now: float, *, max_age_s: float, max_skew_s: float) -> list[DeliveryReport]:
    """The final statuses in an Event Webhook request (a JSON array of events), in order; other
    event types are left out. An event dated more than ``max_age_s`` before ``now`` or more than
    ``max_skew_s`` after it is ``expired``. Every entry is checked first: ``MalformedReport`` if the
    body is not UTF-8 JSON, not a list, or any entry is not an event."""
    events = json_document(body)
    if not isinstance(events, list):
        raise MalformedReport("not a list of events")
    parsed = [_event(entry) for entry in events]
    return [
        DeliveryReport(
            PROVIDER,
            reference,
            delivered=answer is Answer.DELIVERED,
            code=code,
            expired=not fresh(at, now, past_s=max_age_s, future_s=max_skew_s),
        )
        for answer, reference, code, at in parsed
        if answer is not None
    ]


def _event(entry: object) -> tuple[Answer | None, str, str | None, float]:
    if not isinstance(entry, dict):
        raise MalformedReport("an event is not an object")
    kind, at = entry_text(entry, "event"), entry.get("timestamp")
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise MalformedReport("timestamp is not a number")
    try:
        seconds = float(at)
    except OverflowError:  # an integer beyond any float: no date
        raise MalformedReport("timestamp is not a number") from None
    reference = report_reference(entry.get("ref"))
    code = report_code(entry.get("type")) or report_code(kind)
    return FINAL_EVENTS.get(kind), reference, code, seconds
