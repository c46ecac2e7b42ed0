"""What the delivery engine is asked to deliver, and what it answers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from service.domain.ports import EmailMessage


@dataclass(frozen=True, slots=True)
class SmsContent:
    body: str
    segments: int
    encoding: str


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """What to deliver. ``phone`` is a valid E.164 mobile or None; ``email_message`` renders lazily."""

    notification_id: uuid.UUID
    phone: str | None = field(repr=False)
    email: str | None = field(repr=False)
    sms: SmsContent | None
    email_message: Callable[[], EmailMessage] | None = field(default=None, repr=False)
    skip_sms: bool = False  # e.g. the SMS was reported undelivered: email only
    reconcile_since: datetime | None = None  # re-claimed after a crash: look for an earlier send first
    # awaited before each email request (e.g. a durable "may have emailed" mark): email has no look-up
    before_email: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: str  # a State (sent, failed, suppressed_…) or HELD_NOTIFICATION
    channel: str  # sms | email | none
    provider: str | None = None
    provider_message_id: str | None = None
    reference: str | None = None
    reason: str | None = None
    sms_segments: int | None = None
    sms_encoding: str | None = None
    maybe_sent: bool = False  # held after an attempt whose fate is unknown: a later send may duplicate it
    reconciled: bool = False  # an earlier attempt's send, found at the provider: nothing sent now
    earlier_unchecked: bool = False  # re-claimed, and an SMS provider could not say whether it holds a send
    number_refused: str | None = None  # an SMS provider refused the number for good (invalid): its reason
