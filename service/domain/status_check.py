"""When to ask an SMS provider for the final status of a send that never got one, and what then.

A delivery report can be lost for good: the service was down when the provider called back, or
the callback URL was unreachable, and Twilio does not retry status callbacks by default. So a
send still ``sent`` (no final status) ``after_s`` after it was recorded is looked up at its
provider, and the answer is applied like a callback. The rule, on plain values (no I/O):

==================  ============================================================================
answer              next step
==================  ============================================================================
delivered           apply it (receipt), exactly as a callback would
undelivered         apply it (receipt and the owed email fallback), exactly as a callback would
pending             look again after a delay doubling from ``after_s`` up to ``cap_s``
not_found / error   the same (the provider may not have indexed it yet, or was down)
any non-final       once the send is ``max_age_s`` old: give up. Counted in a metric, never
                    recorded as a status the provider did not give
==================  ============================================================================

The last look falls at ``max_age_s`` exactly (a delay never reaches past it), so a send is never
given up without being asked at its end of life. Infobip keeps message logs for 48 hours: the
default maximum age.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.domain.backoff import exponential
from service.domain.outcome import DeliveryTarget


class Answer(enum.StrEnum):
    """What a status look-up learnt of one message."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    PENDING = "pending"  # the provider has it, not final yet
    NOT_FOUND = "not_found"  # the provider does not (or no longer) list it
    ERROR = "error"  # the provider could not answer (down, rate limited, refused)

    @property
    def final(self) -> bool:
        return self in (Answer.DELIVERED, Answer.UNDELIVERED)


@dataclass(frozen=True, slots=True)
class Apply:
    """A final status: record it and its receipt as a callback would."""

    delivered: bool


@dataclass(frozen=True, slots=True)
class LookAgain:
    after_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Too old to wait for: counted, left ``sent`` (never a status the provider did not give)."""


Step = Apply | LookAgain | GiveUp


@dataclass(frozen=True, slots=True)
class StatusCheckPolicy:
    after_s: float = 900.0  # first look this long after the send
    max_age_s: float = 172_800.0  # give up on a send this old (Infobip keeps logs 48 h)
    cap_s: float = 3600.0  # longest wait between two looks

    def __post_init__(self) -> None:
        if not (self.after_s > 0 and self.cap_s > 0):
            raise ValueError("after_s and cap_s must be > 0")
        if not self.max_age_s >= self.after_s:
            raise ValueError("max_age_s must be >= after_s")

    def first_look_at(self, sent_at: datetime) -> datetime:
        """When a send that got no final status is first looked up."""
        return sent_at + timedelta(seconds=self.after_s)

    def due(self, sent_at: datetime, now: datetime) -> bool:
        return now >= self.first_look_at(sent_at)

    def delay(self, checks: int) -> float:
        """The wait after look number ``checks`` (1 for the first) that gave no final status."""
        if checks < 1:
            raise ValueError("checks must be >= 1: a delay follows a look")
        return exponential(checks - 1, base_s=self.after_s, cap_s=self.cap_s)

    def after(self, answer: Answer, *, sent_at: datetime, now: datetime, checks: int) -> Step:
        """What to do after look number ``checks`` at a send recorded at ``sent_at`` gave ``answer``."""
        if answer.final:
            return Apply(delivered=answer is Answer.DELIVERED)
        left = (sent_at + timedelta(seconds=self.max_age_s) - now).total_seconds()
        if left <= 0:
            return GiveUp()
        return LookAgain(min(self.delay(checks), left))


@dataclass(frozen=True, slots=True)
class AwaitingStatus:
    """An SMS send with no final status, leased to one status look-up."""

    target: DeliveryTarget
    message_id: str | None  # the provider's id (Twilio SID, Infobip messageId)
    sent_at: datetime  # when the send was recorded
    checks: int  # looks so far, this one included

    @property
    def notification_id(self) -> uuid.UUID:
        return self.target.notification_id
