"""The wire contracts: the shipment event we consume and the receipt we publish.

These pydantic models are the only place where Kafka payloads are validated; the JSON Schemas
in ``schemas/`` are generated from them (``notifier schemas export``) and a test fails when the
two drift apart. Inside the service the validated event becomes a frozen domain value.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from service.domain.errors import EventRejected
from service.domain.model import Pickup, Recipient, ShipmentUpdate

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# No control characters in identifiers: they are stored in PostgreSQL (which refuses NUL) and
# printed in headers and logs; a NUL would make an event fail forever instead of being rejected.
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class RecipientV1(_Strict):
    """Who to notify. Personal data: never logged, never copied into a receipt."""

    name: NonEmpty
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

    place: NonEmpty
    address: NonEmpty
    window_start: AwareDatetime
    window_end: AwareDatetime
    documents: list[Identifier] = Field(
        default_factory=list,
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
    status: Identifier = Field(description="The TMS status code, e.g. ARRIVED_HK_WAREHOUSE.")
    occurred_at: AwareDatetime
    location: NonEmpty | None = None
    bike_model: NonEmpty
    recipient: RecipientV1
    pickup: PickupV1 | None = None

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


def parse_event(value: bytes | None) -> ShipmentUpdate:
    """Validate a raw Kafka value. Raises ``EventRejected`` whose reason names the problem, never the data."""
    if value is None:
        raise EventRejected("empty_value", "message has no value (tombstone)")
    try:
        return ShipmentEventV1.model_validate_json(value).to_domain()
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)
        kinds = {e["type"] for e in first}
        if "json_invalid" in kinds:
            raise EventRejected("malformed_json", "value is not valid JSON") from None
        # Location and error type only: the input values may be personal data.
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['type']}" for e in first[:5])
        raise EventRejected("invalid_event", where) from None


Outcome = Literal[
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "suppressed_invalid_recipient",
    "suppressed_opted_out",
    "suppressed_stale",
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
    outcome: Outcome
    channel: Literal["sms", "email", "none"]
    provider: str | None = None
    provider_message_id: str | None = None
    locale: str | None = None
    sms_encoding: Literal["GSM-7", "UCS-2"] | None = None
    sms_segments: int | None = None
    reason: str | None = Field(default=None, description="A machine code for failures and suppressions.")
    occurred_at: datetime = Field(description="When the TMS says the milestone happened.")
    decided_at: datetime = Field(description="When the notifier reached this outcome.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def json_schemas() -> dict[str, dict[str, object]]:
    """The JSON Schemas of both contracts, keyed by their file name in ``schemas/``."""
    return {
        "shipment-status-event.v1.json": ShipmentEventV1.model_json_schema(mode="validation"),
        "notification-receipt.v1.json": ReceiptV1.model_json_schema(mode="serialization"),
    }


def dump_schema(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
