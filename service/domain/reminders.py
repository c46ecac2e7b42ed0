"""The pickup-reminder policy: when an uncollected bike's customer is reminded, and when never.

Reminder ``k`` (1 .. ``max_reminders``) is due ``k * after_days`` days after ``ready_for_pickup``
(the TMS's time of the order's first ready event), and never sooner than ``after_days`` after the
reminder before it was sent, so reminders sent late (an outage, quiet hours) never come in a
bunch. Never once the bike is picked up, whatever else holds; never more than ``max_reminders``;
and none once ``(max_reminders + 1) * after_days`` days have passed since ready (a reminder that
late reminds of nothing useful: the operator's follow-up is a phone call). Who sends, when quiet
hours allow and whether consent does is the schedule's business; this answers only "is one due,
which, and when". Pure: no I/O, the time is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

#: Bounds of the policy (and of its settings, ``service.config.pickups``).
MAX_AFTER_DAYS: Final = 30
MAX_REMINDERS: Final = 5
#: The latest a reminder may be due after ready: the sealed contact must outlive it (retention).
MAX_SPAN_DAYS: Final = 60


class ReminderVerdict(StrEnum):
    DUE = "due"  # reminder ``number`` is due now
    NOT_YET = "not_yet"  # reminder ``number`` is due at ``due_at``
    PICKED_UP = "picked_up"  # the bike was collected: no reminder, ever
    EXHAUSTED = "exhausted"  # ``max_reminders`` were sent
    LAPSED = "lapsed"  # too long since ready to remind of anything
    OFF = "off"  # reminders are off (``max_reminders`` is 0)


@dataclass(frozen=True, slots=True)
class ReminderDecision:
    verdict: ReminderVerdict
    number: int | None = None  # the reminder due now or next (1-based), with DUE and NOT_YET
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReminderPolicy:
    after_days: int
    max_reminders: int

    def __post_init__(self) -> None:
        if not 1 <= self.after_days <= MAX_AFTER_DAYS:
            raise ValueError(f"after_days must be 1 to {MAX_AFTER_DAYS}, not {self.after_days}")
        if not 0 <= self.max_reminders <= MAX_REMINDERS:
            raise ValueError(f"max_reminders must be 0 to {MAX_REMINDERS}, not {self.max_reminders}")
        if self.after_days * self.max_reminders > MAX_SPAN_DAYS:
            raise ValueError(f"the last reminder would be due over {MAX_SPAN_DAYS} days after ready")

    @property
    def _step(self) -> timedelta:
        return timedelta(days=self.after_days)

    def due_at(self, ready_at: datetime, number: int) -> datetime:
        """When reminder ``number`` (1-based) falls due, if none was sent late before it."""
        if not 1 <= number <= self.max_reminders:
            raise ValueError(f"reminder {number} is not one of 1 to {self.max_reminders}")
        return ready_at + number * self._step

    def lapses_at(self, ready_at: datetime) -> datetime:
        """From when no reminder is due any more, sent or not."""
        return ready_at + (self.max_reminders + 1) * self._step

    def decide(
        self,
        *,
        ready_at: datetime,
        now: datetime,
        sent: int = 0,
        last_sent_at: datetime | None = None,
        picked_up: bool = False,
    ) -> ReminderDecision:
        """Whether a reminder is due at ``now``, given how many were sent (the last at ``last_sent_at``)."""
        if sent < 0:
            raise ValueError("sent cannot be negative")
        if picked_up:
            return ReminderDecision(ReminderVerdict.PICKED_UP)
        if self.max_reminders == 0:
            return ReminderDecision(ReminderVerdict.OFF)
        if sent >= self.max_reminders:
            return ReminderDecision(ReminderVerdict.EXHAUSTED)
        number = sent + 1
        due = self.due_at(ready_at, number)
        if sent and last_sent_at is not None:
            due = max(due, last_sent_at + self._step)
        if due >= self.lapses_at(ready_at) or now >= self.lapses_at(ready_at):
            return ReminderDecision(ReminderVerdict.LAPSED)
        verdict = ReminderVerdict.DUE if now >= due else ReminderVerdict.NOT_YET
        return ReminderDecision(verdict, number, due)
