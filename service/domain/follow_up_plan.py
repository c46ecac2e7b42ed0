"""What to do with a follow-up of the pickup notice when its scheduled send comes due: send it
now (which one), try again later (when), or drop it (why). Pure: no I/O, the time is given.

A pickup reminder's row carries the order's next reminder. When it comes due, the reminder policy
(``domain.reminders``) decides with a fresh answer to "was the bike collected?" and with the
reminders already decided (sent or not: each counts towards the most there may be, so a reminder
that could not go is not retried in a loop). A reminder due inside quiet hours waits for the
window's end; reminders never break through (they are not urgent, whatever the pickup notice
may do). After one is decided, the row moves on to the next reminder's due time, or goes.

The survey link goes once (``decided`` > 0: dropped), only while a survey is configured, and
outside quiet hours too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from service.domain.due_sends import DueKind
from service.domain.follow_ups import FollowUp
from service.domain.quiet_hours import QuietHours
from service.domain.reminders import ReminderPolicy, ReminderVerdict


@dataclass(frozen=True, slots=True)
class DueFollowUp:
    """A follow-up's scheduled send taken (leased) for release, with what the store knows of it."""

    schedule_id: uuid.UUID
    kind: FollowUp
    notification_id: uuid.UUID  # the pickup notice it follows (its links, its sealed event)
    order_id: str
    waybill: str
    event_id: str
    occurred_at: datetime
    releases: int  # takes so far, this one included: more than one means an earlier take never finished
    first_released_at: datetime | None
    ready_at: datetime | None  # the order's ready_for_pickup time (``pickup_dwell``)
    picked_up_at: datetime | None  # its collection, if the TMS reported one
    decided: int = 0  # follow-ups of this kind already decided for the notice
    last_decided_at: datetime | None = None

    @property
    def retaken(self) -> bool:
        return self.releases > 1


def due_kind(kind: FollowUp) -> DueKind:
    """The ``scheduled_sends.kind`` of a follow-up (the same value)."""
    return DueKind(kind.value)


class Step(StrEnum):
    SEND = "send"  # send follow-up ``number`` now
    LATER = "later"  # not now: due again at ``at``
    DROP = "drop"  # never: ``why`` says which (a metric label, never a receipt)


#: Why a follow-up is dropped unsent: the reminder policy's verdicts and these.
NO_READY_TIME = "no_ready_time"  # the order has no ready_for_pickup time (cannot be reminded of)
ALREADY_SENT = "already_sent"  # the survey went already
SURVEY_OFF = "survey_off"  # no survey configured (any more)


@dataclass(frozen=True, slots=True)
class Plan:
    step: Step
    number: int | None = None  # with SEND: the follow-up's number (reminder k; survey 1)
    at: datetime | None = None  # with LATER
    why: str | None = None  # with DROP
    days_waiting: int | None = None  # with a reminder's SEND: whole days since ready


def quiet_until(quiet: QuietHours | None, now: datetime) -> datetime | None:
    """The end of the quiet window ``now`` is inside (follow-ups never break through); None: go."""
    if quiet is None or quiet.window is None:
        return None
    return quiet.window.end_of(now)


def plan_reminder(d: DueFollowUp, policy: ReminderPolicy, quiet: QuietHours | None, now: datetime) -> Plan:
    if d.ready_at is None:
        return Plan(Step.DROP, why=NO_READY_TIME)
    decision = policy.decide(
        ready_at=d.ready_at,
        now=now,
        sent=d.decided,
        last_sent_at=d.last_decided_at,
        picked_up=d.picked_up_at is not None,
    )
    if decision.verdict == ReminderVerdict.NOT_YET:
        return Plan(Step.LATER, at=decision.due_at)
    if decision.verdict != ReminderVerdict.DUE:
        return Plan(Step.DROP, why=decision.verdict.value)
    end = quiet_until(quiet, now)
    if end is not None:
        return Plan(Step.LATER, at=end)
    days = max(policy.after_days, (now - d.ready_at) // timedelta(days=1))
    return Plan(Step.SEND, number=decision.number, days_waiting=days)


def next_reminder_at(
    policy: ReminderPolicy, *, ready_at: datetime, decided: int, decided_at: datetime
) -> datetime | None:
    """After reminder ``decided`` was decided at ``decided_at``: when the next is due (None: no next)."""
    decision = policy.decide(ready_at=ready_at, now=decided_at, sent=decided, last_sent_at=decided_at)
    return decision.due_at if decision.verdict == ReminderVerdict.NOT_YET else None


def plan_survey(d: DueFollowUp, *, enabled: bool, quiet: QuietHours | None, now: datetime) -> Plan:
    if d.decided > 0:
        return Plan(Step.DROP, why=ALREADY_SENT)
    if not enabled:
        return Plan(Step.DROP, why=SURVEY_OFF)
    end = quiet_until(quiet, now)
    if end is not None:
        return Plan(Step.LATER, at=end)
    return Plan(Step.SEND, number=1)


@dataclass(frozen=True, slots=True)
class FollowUpRef:
    """Which follow-up an outcome is: its kind and number, its own id, and the notice it follows."""

    kind: FollowUp
    number: int
    follow_up_id: uuid.UUID  # ``follow_ups.follow_up_id``: what the providers and the receipt's id know
    notification_id: uuid.UUID  # the pickup notice's: the receipt's notification_id
