"""Domain values. Fields holding personal data are left out of ``repr`` so they cannot reach a log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from service.domain.milestones import Milestone

#: Namespace for ids derived from business keys: the same order and milestone always give the same id.
NOTIFIER_NAMESPACE = uuid.UUID("6f1c7f2e-3a51-5b8e-9d0c-2f3e4a5b6c7d")


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str = field(repr=False)
    phone: str | None = field(repr=False)
    email: str | None = field(repr=False)
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class Pickup:
    place: str
    address: str
    window_start: datetime
    window_end: datetime
    documents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShipmentUpdate:
    """One validated shipment-status event from the TMS."""

    event_id: str
    order_id: str
    waybill: str
    tms_status: str
    occurred_at: datetime
    bike_model: str
    recipient: Recipient
    location: str | None = None
    pickup: Pickup | None = None

    @classmethod
    def for_receipt(
        cls, *, event_id: str, order_id: str, waybill: str, occurred_at: datetime
    ) -> ShipmentUpdate:
        """The non-personal fields a receipt needs, as the store keeps them: no recipient data (a
        delivery report's or a release's receipt, when the event itself is not at hand)."""
        return cls(
            event_id, order_id, waybill, "", occurred_at, "", Recipient(name="", phone=None, email=None)
        )


#: A Kafka partition, as (topic, partition number): the key of batches, offsets and positions.
Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """A raw message as it came off a Kafka partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def notification_id(order_id: str, milestone: Milestone) -> uuid.UUID:
    """The stable id of the one notification an order gets for a milestone."""
    return uuid.uuid5(NOTIFIER_NAMESPACE, f"{order_id}\x1f{milestone.value}")


def receipt_id(
    notification: uuid.UUID, outcome: str, channel: str = "none", provider: str | None = None
) -> uuid.UUID:
    """The stable id of a receipt: replays of the same outcome on the same channel carry the same id."""
    return uuid.uuid5(notification, f"{outcome}\x1f{channel}\x1f{provider or ''}")
