"""The wire contracts: the shipment event we consume and the receipt we publish.

These pydantic models are the only place where Kafka payloads are validated; the JSON Schemas
in ``schemas/`` are generated from them (``notifier schemas export``) and a test fails when the
two drift apart. Inside the service the validated event becomes a frozen domain value.

The event contract is bounded and strict, and its patterns are in the JSON Schema too, so a
producer validating against the published schema and this parser accept the same events
(``tests/unit/test_contracts.py`` runs a table of hostile events through both): lengths and list
sizes, RFC 3339 date-times only (years 2000-2099), no control characters. One rule needs a
clock and is checked here only: ``occurred_at`` at most ``MAX_FUTURE_SKEW`` ahead of ``now``.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.domain.consent_snapshot import SOURCE_KIND_MAX as CONSENT_SOURCE_MAX
from service.domain.consent_snapshot import SOURCE_KIND_PATTERN as CONSENT_SOURCE_PATTERN
from service.domain.errors import EventRejected
from service.domain.lifecycle import State
from service.domain.model import Pickup, Recipient, ShipmentUpdate

# Control characters: C0, DEL and C1. In a free-text field (names, places, models) they are
# refused (NUL, ESC, BEL... mean a broken or hostile producer and must not reach an SMS body),
# except the whitespace ones (tab, newline, CR, VT, FF, NEL), which collapse to one space in a
# message. Identifiers and codes refuse them all inside: they are stored, matched and printed in
# headers and logs. Whitespace around a value is trimmed (as the schema's patterns allow).
_CONTROLS: Final = r"\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f"
_ID_CONTROLS: Final = r"\x00-\x1f\x7f-\x9f"
#: Unicode White_Space, spelled out: what is trimmed, the same in Python, Rust and ECMA regexes.
_WS: Final = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_INVISIBLE: Final = r"\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_INVISIBLE_RE: Final = re.compile(f"[{_INVISIBLE}]")


def _strip_invisible(value: str) -> str:
    return _INVISIBLE_RE.sub("", value).strip()


_TEXT_PATTERN: Final = f"^[^{_CONTROLS}]*[^{_CONTROLS}{_WS}{_INVISIBLE}][^{_CONTROLS}]*$"
_ID_PATTERN: Final = f"^[{_WS}]*[^{_ID_CONTROLS}{_WS}]([^{_ID_CONTROLS}]*[^{_ID_CONTROLS}{_WS}])?[{_WS}]*$"


def _text(max_length: int) -> StringConstraints:
    """Free text: 1..max_length characters, at least one visible, no control characters."""
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=_TEXT_PATTERN
    )


NonEmpty = Annotated[str, _text(200), AfterValidator(_strip_invisible)]
Name = Annotated[str, _text(100), AfterValidator(_strip_invisible)]
Short = Annotated[str, _text(100), AfterValidator(_strip_invisible)]
# No control characters in identifiers: they are stored in PostgreSQL (which refuses NUL) and
# printed in headers and logs; a NUL would make an event fail forever instead of being rejected.
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_ID_PATTERN),
]
#: Most document codes one pickup may ask for (there are four kinds today).
MAX_DOCUMENTS: Final = 10

# Date-times: RFC 3339 with an offset, as the JSON Schema says, and nothing else: a Unix number or
# a numeric string is refused (pydantic's lax mode would read both as UTC). The year is bounded to
# 2000-2099 in the pattern itself, so the schema and the model refuse the same extreme dates (a
# year 1 or 9999 once failed downstream on every attempt). No leap second (:60), as in Python.
RFC3339_PATTERN: Final = (
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339_RE: Final = re.compile(RFC3339_PATTERN)
#: How far in the future an event's ``occurred_at`` may be (the TMS clock may be ahead of ours).
MAX_FUTURE_SKEW: Final = timedelta(days=1)


def _rfc3339(value: object) -> datetime:
    if not isinstance(value, str) or not _RFC3339_RE.match(value):
        raise PydanticCustomError("datetime_not_rfc3339", "must be an RFC 3339 date-time with an offset")
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # e.g. 30 February: the pattern cannot see the calendar
        raise PydanticCustomError("datetime_not_rfc3339", "not a calendar date") from None


DateTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class RecipientV1(_Strict):
    """Who to notify. Personal data: never logged, never copied into a receipt."""

    name: Name
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    locale: Annotated[str, StringConstraints(max_length=20)] | None = Field(
        default=None, description="The customer's language, e.g. zh-HK or en."
    )

    @model_validator(mode="after")
    def _reachable(self) -> RecipientV1:
        if not self.phone and not self.email:
            raise ValueError("recipient needs a phone or an email")
        return self


class PickupV1(_Strict):
    """Where and when the customer can collect the bike."""

    place: Short
    address: NonEmpty
    window_start: DateTime
    window_end: DateTime
    documents: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_DOCUMENTS,
        description="Codes of the documents to bring: HKID, PASSPORT, ORDER_CONFIRMATION, AUTHORISATION_LETTER.",
    )

    @model_validator(mode="after")
    def _window_order(self) -> PickupV1:
        if self.window_end <= self.window_start:
            raise ValueError("pickup window_end must be after window_start")
        return self


class ShipmentEventV1(_Strict):
    """A shipment-status event from the TMS, keyed on Kafka by ``order_id``."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, str_strip_whitespace=True, title="ShipmentStatusEvent"
    )

    schema_version: Literal[1] = 1
    event_id: Identifier
    order_id: Identifier
    waybill: Identifier
    status: Identifier = Field(
        description="The TMS status code, e.g. ARRIVED_HK_WAREHOUSE. Notified: ARRIVED_HK_WAREHOUSE, "
        "CUSTOMS_CLEARED, READY_FOR_PICKUP (which needs `pickup`); PICKED_UP (the customer collected "
        "the bike) notifies no one but ends the pickup's dwell time and reminders; any other status "
        "is recorded and notifies no one."
    )
    occurred_at: DateTime = Field(
        description="RFC 3339 with an offset, years 2000-2099, and at most a day ahead of the "
        "notifier's clock (the last rule is checked by the service, not by this schema)."
    )
    location: Short | None = None
    bike_model: Short
    recipient: RecipientV1
    pickup: PickupV1 | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value > now + MAX_FUTURE_SKEW:
            raise PydanticCustomError("occurred_in_future", "occurred_at is more than a day ahead")
        return value

    @model_validator(mode="after")
    def _pickup_when_ready(self) -> ShipmentEventV1:
        if self.status.upper() == "READY_FOR_PICKUP" and self.pickup is None:
            raise ValueError("status READY_FOR_PICKUP needs a pickup place and window")
        return self

    def to_domain(self) -> ShipmentUpdate:
        p = self.pickup
        return ShipmentUpdate(
            event_id=self.event_id,
            order_id=self.order_id,
            waybill=self.waybill,
            tms_status=self.status.upper(),
            occurred_at=self.occurred_at,
            bike_model=self.bike_model,
            location=self.location,
            recipient=Recipient(
                name=self.recipient.name,
                phone=self.recipient.phone,
                email=self.recipient.email,
                locale=self.recipient.locale,
            ),
            pickup=None
            if p is None
            else Pickup(
                place=p.place,
                address=p.address,
                window_start=p.window_start,
                window_end=p.window_end,
                documents=tuple(p.documents),
            ),
        )


def parse_event(value: bytes | None, *, now: datetime | None = None) -> ShipmentUpdate:
    """Validate a raw Kafka value. Raises ``EventRejected`` whose reason names the problem, never the data.

    ``now`` (default: the current time) bounds ``occurred_at`` from above; tests inject it.
    """
    if value is None:
        raise EventRejected("empty_value", "message has no value (tombstone)")
    try:
        return ShipmentEventV1.model_validate_json(value, context={"now": now}).to_domain()
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)
        kinds = {e["type"] for e in first}
        if "json_invalid" in kinds:
            raise EventRejected("malformed_json", "value is not valid JSON") from None
        # Location and error type only: the input values may be personal data.
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['type']}" for e in first[:5])
        raise EventRejected("invalid_event", where) from None


def canonical_event(update: ShipmentUpdate) -> bytes:
    """The validated event as canonical JSON: the contract's known fields only, as validated.

    This, not the raw Kafka value, is what is sealed for the email fallback: unknown extra fields
    a producer added are never kept. ``parse_event`` reads it back.
    """
    r, p = update.recipient, update.pickup
    event: dict[str, object] = {
        "schema_version": 1,
        "event_id": update.event_id,
        "order_id": update.order_id,
        "waybill": update.waybill,
        "status": update.tms_status,
        "occurred_at": update.occurred_at.isoformat(),
        "location": update.location,
        "bike_model": update.bike_model,
        "recipient": {"name": r.name, "phone": r.phone, "email": r.email, "locale": r.locale},
        "pickup": None
        if p is None
        else {
            "place": p.place,
            "address": p.address,
            "window_start": p.window_start.isoformat(),
            "window_end": p.window_end.isoformat(),
            "documents": list(p.documents),
        },
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


#: ``lifecycle.RECEIPT_OUTCOMES``: every state but ``claimed`` (a unit test keeps the two equal).
ReceiptOutcome = Literal[
    State.SENT,
    State.DELIVERED,
    State.UNDELIVERED,
    State.FAILED,
    State.SUPPRESSED_INVALID_RECIPIENT,
    State.SUPPRESSED_OPTED_OUT,
    State.SUPPRESSED_STALE,
    State.SUPPRESSED_PILOT,
    State.SCHEDULED,
    State.SUPPRESSED_SUPERSEDED,
]


class ReceiptV1(BaseModel):
    """What happened to one notification. Carries ids and codes only, never a phone, email or name."""

    model_config = ConfigDict(frozen=True, title="NotificationReceipt")

    schema_version: Literal[1] = 1
    receipt_id: uuid.UUID = Field(
        description="Stable: the same outcome of the same notification has the same id."
    )
    notification_id: uuid.UUID = Field(description="Stable id of the (order, milestone) notification.")
    order_id: str
    waybill: str
    milestone: str
    event_id: str
    outcome: ReceiptOutcome
    channel: Literal["sms", "email", "none"]
    provider: str | None = None
    provider_message_id: str | None = None
    locale: str | None = None
    sms_encoding: Literal["GSM-7", "UCS-2"] | None = None
    sms_segments: int | None = None
    reason: str | None = Field(default=None, description="A machine code for failures and suppressions.")
    occurred_at: datetime = Field(description="When the TMS says the milestone happened.")
    decided_at: datetime = Field(description="When the notifier reached this outcome.")
    # The consent the decision applied (a decision's receipt: sent, failed, suppressed; not a
    # delivery report's). Codes and a time only: no name, no phone or email.
    consent_state: Literal["opted_out", "opted_in", "no_record"] | None = Field(
        default=None,
        description="The recipient's consent when the notifier decided: opted_out (nothing is sent),"
        " opted_in (opted back in after an opt-out), no_record (never opted out). Null on a delivery"
        " report's receipt and on receipts of older versions.",
    )
    consent_source: str | None = Field(
        default=None,
        max_length=CONSENT_SOURCE_MAX,
        pattern=CONSENT_SOURCE_PATTERN,
        description="Where that consent record came from: unsubscribe_link, sms_reply:<provider>,"
        " provider:<provider>, operator (staff or an operator; who is in the audit log, never here)."
        " Null with no_record.",
    )
    consent_set_at: datetime | None = Field(
        default=None, description="When that consent record was set. Null with no_record."
    )
    scheduled_for: datetime | None = Field(
        default=None,
        description="Outcome 'scheduled': the end of the quiet hours it waits for; releases are paced "
        "out from then, and the real outcome follows in its own receipt.",
    )

    # Follow-ups of the pickup notice (issue 15, items 3 and 4): a pickup reminder or the survey
    # link. Its receipts carry the pickup notice's notification_id (and milestone
    # ready_for_pickup), so consumers that know only milestones see them with that notification.
    follow_up: Literal["pickup_reminder", "survey"] | None = Field(
        default=None,
        description="Set on the receipt of a message that follows the pickup notice: pickup_reminder"
        " (the bike is not collected yet) or survey (the satisfaction-survey link, after pickup). Null"
        " on a milestone's own receipts and on receipts of older versions.",
    )
    follow_up_number: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="With follow_up: which of them (reminder 1, 2, ...; the survey is 1).",
    )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


#: The dialect pydantic generates (and the tests validate with). The schemas use only keywords that
#: mean the same in draft-07, the dialect AsyncAPI 3.0 reads them as (``schemas/asyncapi.yaml``).
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: Where every ``$id`` lives: one namespace for the organisation's schemas (``example.com.hk`` stands
#: for its domain, as in ``deploy/k8s``), then the file name, which holds the schema's name and major
#: version. An ``$id`` names a schema; it need not be fetchable, and it changes only with a new major
#: version (a new file), never with the deployment's host names.
SCHEMA_ID_BASE: Final = "https://schemas.example.com.hk/milestone-notifier/"


def json_schemas() -> dict[str, dict[str, object]]:
    """The JSON Schemas of both contracts, keyed by their file name in ``schemas/``."""
    generated = {
        "shipment-status-event.v1.json": ShipmentEventV1.model_json_schema(mode="validation"),
        "notification-receipt.v1.json": ReceiptV1.model_json_schema(mode="serialization"),
    }
    return {
        name: {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID_BASE + name, **schema}
        for name, schema in generated.items()
    }


def dump_schema(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
