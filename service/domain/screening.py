"""Who may be messaged on which channel, from the recipient lists: pilot mode and bad numbers.

Two lists, both of blind indexes (never a phone or email in clear; migration 0017):

- **pilot mode**'s allow-list: while it is on, an SMS goes only to a listed phone and an email only
  to a listed address; a notification none of whose contacts is listed is ``suppressed_pilot``
  (decided and receipted, never sent), so the pipeline runs on real traffic before it texts
  real customers;
- **bad numbers**: a number that failed for good (refused as invalid or unreachable, reported
  undelivered with a permanent code, or undelivered several times in a row) is not texted again:
  the notification goes by email, or without one is ``suppressed_invalid_recipient`` with the
  reason ``number_marked_undeliverable``. A new number in a later event is not marked: texted.

``screen_verdict`` applies both to one notification; ``report_marks`` says whether a delivery
report marks its number. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.domain import reasons
from service.domain.lifecycle import State


@dataclass(frozen=True, slots=True)
class Screen:
    """What the recipient lists say of one notification's contacts."""

    pilot: bool = False  # pilot mode is on
    mobile: bool = False  # the recipient has a valid mobile (one with a blind index)
    phone_listed: bool = False  # the phone is on the pilot's allow-list
    email_listed: bool = False  # the email address is on it
    number_marked: bool = False  # the phone is marked undeliverable


#: No list applies: pilot mode off, the number not marked.
OPEN = Screen()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the lists change for one notification."""

    suppressed: State | None = None  # not sent at all: this outcome, with ``reason``
    reason: str | None = None
    email_only: bool = False  # no SMS (``reason`` says why, as the outcome's phone note)
    drop_email: bool = False  # no email (pilot mode: the address is not listed)


def screen_verdict(screen: Screen, *, has_email: bool, email_only: bool = False) -> Verdict:
    """The lists' verdict on one notification: ``has_email``, the recipient has an address;
    ``email_only``, the caller sends no SMS anyway (the fallback of an undelivered SMS)."""
    sms_wanted = screen.mobile and not email_only
    sms_allowed = sms_wanted and (not screen.pilot or screen.phone_listed)
    email_allowed = has_email and (not screen.pilot or screen.email_listed)
    if screen.pilot and (sms_wanted or has_email) and not (sms_allowed or email_allowed):
        return Verdict(State.SUPPRESSED_PILOT, reasons.PILOT_NOT_LISTED)
    drop_email = has_email and not email_allowed
    if sms_wanted and screen.number_marked:
        if not email_allowed:
            return Verdict(State.SUPPRESSED_INVALID_RECIPIENT, reasons.BAD_NUMBER)
        return Verdict(reason=reasons.BAD_NUMBER, email_only=True, drop_email=drop_email)
    if sms_wanted and not sms_allowed:  # pilot mode, the phone not listed: the listed email carries it
        return Verdict(reason=reasons.PILOT_PHONE_NOT_LISTED, email_only=True, drop_email=drop_email)
    return Verdict(drop_email=drop_email)


class MarkedBy(StrEnum):
    """Why a number was marked undeliverable (``notifier_bad_numbers_marked_total{why}``)."""

    REFUSED = "refused"  # a provider refused the send: invalid or unreachable number
    PERMANENT_REPORT = "permanent_report"  # reported undelivered with a code that says it is for good
    REPEATED_UNDELIVERED = "repeated_undelivered"  # reported undelivered this many times in a row


@dataclass(frozen=True, slots=True)
class NumberPolicy:
    """When delivery reports mark a number (``NOTIFIER_BAD_NUMBER_UNDELIVERED_REPORTS``)."""

    undelivered_in_a_row: int = 3

    def __post_init__(self) -> None:
        if self.undelivered_in_a_row < 1:
            raise ValueError("undelivered_in_a_row must be at least 1")

    def marks(self, *, permanent: bool, streak: int) -> MarkedBy | None:
        """Whether an undelivered report marks its number: ``permanent`` (its code says the number
        cannot take SMS), ``streak`` (undelivered reports in a row, this one included)."""
        if permanent:
            return MarkedBy.PERMANENT_REPORT
        if streak >= self.undelivered_in_a_row:
            return MarkedBy.REPEATED_UNDELIVERED
        return None


@dataclass(frozen=True, slots=True)
class NumberReport:
    """A delivery report's effect on its number: the number's blind index, its undelivered streak
    now (0 after a delivered report) and whether it was marked already."""

    subject: bytes
    streak: int
    marked: bool


@dataclass(frozen=True, slots=True)
class NumberMark:
    """A marked number, as support sees it (no number: the mark's time and reason)."""

    marked_at: datetime
    reason: str | None
