"""The outcome of one notification, as recorded in the store and reported in its receipt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from service.domain.consent_snapshot import ConsentSnapshot
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import ShipmentUpdate

Channel = Literal["sms", "email", "none"]


@dataclass(frozen=True, slots=True)
class Outcome:
    notification_id: uuid.UUID
    update: ShipmentUpdate
    milestone: Milestone
    outcome: str  # a ``State`` (never ``claimed``), or ``lifecycle.HELD_NOTIFICATION`` (never recorded)
    channel: Channel
    decided_at: datetime
    provider: str | None = None
    provider_message_id: str | None = None
    locale: str | None = None
    sms_encoding: str | None = None
    sms_segments: int | None = None
    reason: str | None = None
    reference: str | None = None  # the attempt that produced this outcome, echoed by provider callbacks
    maybe_sent: bool = False  # held after an attempt whose fate is unknown (never recorded, never receipted)
    earlier_unchecked: bool = (
        False  # re-claimed: an SMS provider could not say whether it holds an earlier send
    )
    consent: ConsentSnapshot | None = None  # the consent the decision read (None: not a decision)
    scheduled_for: datetime | None = None  # ``scheduled``: the end of the quiet window it waits for


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Ask the store for the right to notify (order, milestone); ``state`` is ``claimed`` or final (stale)."""

    notification_id: uuid.UUID
    update: ShipmentUpdate
    milestone: Milestone
    state: State
    link_id: bytes | None = None
    phone_subject: bytes | None = None  # blind indexes of the recipient: no plaintext
    email_subject: bytes | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claim the store granted. ``claims > 1`` means an earlier claim never finished: maybe sent already."""

    notification_id: uuid.UUID
    claims: int
    first_claimed_at: datetime | None = None  # when the first claim was made: where a lookup starts
    email_attempted: bool = False  # an earlier claim began an email, which no provider lets us look up


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A receipt waiting in the outbox: written with its outcome, published to Kafka afterwards."""

    receipt_id: uuid.UUID
    notification_id: uuid.UUID
    order_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to publish outbox rows for a while, held by one publishing operation (never a whole
    process: two operations of one instance must not take each other's rows)."""

    owner: str
    seconds: float


@dataclass(frozen=True, slots=True)
class SealedContact:
    """The encrypted event behind a notification, kept for a later fallback."""

    notification_id: uuid.UUID
    key_id: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """What the store knows of a notification when a provider reports on it."""

    notification_id: uuid.UUID
    milestone: Milestone
    state: State
    channel: str | None
    provider: str | None
    reference: str | None
    order_id: str
    waybill: str
    event_id: str
    occurred_at: datetime
    fallback_attempts: int = 0  # email fallback attempts made for an undelivered SMS


@dataclass(frozen=True, slots=True)
class LinkedNotification:
    """The notification a signed link names."""

    notification_id: uuid.UUID
    order_id: str
    waybill: str
    subjects: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    milestone: Milestone
    state: str
    channel: str | None
    occurred_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HeldReport:
    """A provider's report that arrived before its send was recorded."""

    reference: str
    provider: str
    delivered: bool
    code: str | None
