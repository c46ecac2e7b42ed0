"""What a batch's pickup events put on the schedule: the first reminder N days after ready, the
survey its delay after a completed pickup, nothing of what is not configured."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from service.dedup.follow_up_schedule import FollowUpSchedule
from service.domain.dwell import Dwell, End, PickupTime
from service.domain.follow_ups import FollowUp
from service.domain.quiet_hours import HKT
from service.domain.reminders import ReminderPolicy

READY = datetime(2026, 11, 20, 11, 0, tzinfo=HKT)
PICKED = READY + timedelta(days=2)
TIMES = [PickupTime("A", End.READY, READY, "Shop"), PickupTime("B", End.PICKED_UP, PICKED)]
DWELLS = [Dwell("B", "Shop", 3600.0, PICKED)]


class Recorder:
    def __init__(self) -> None:
        self.due: list[tuple[FollowUp, str, datetime]] = []

    async def schedule_follow_ups(self, due: Sequence[tuple[FollowUp, str, datetime]]) -> int:
        self.due += due
        return len(due)


def test_a_ready_event_starts_the_first_reminder_and_a_pickup_the_survey() -> None:
    s = FollowUpSchedule(Recorder(), reminders=ReminderPolicy(3, 2), survey_delay=timedelta(hours=24))  # type: ignore[arg-type]
    assert s.due(TIMES, DWELLS) == [
        (FollowUp.PICKUP_REMINDER, "A", READY + timedelta(days=3)),
        (FollowUp.SURVEY, "B", PICKED + timedelta(hours=24)),
    ]


def test_nothing_that_is_not_configured() -> None:
    off = FollowUpSchedule(Recorder(), reminders=ReminderPolicy(3, 0), survey_delay=None)  # type: ignore[arg-type]
    assert off.due(TIMES, DWELLS) == []
    none = FollowUpSchedule(Recorder(), reminders=None, survey_delay=None)  # type: ignore[arg-type]
    assert none.due(TIMES, DWELLS) == []


async def test_schedule_writes_what_is_due() -> None:
    rec = Recorder()
    s = FollowUpSchedule(rec, reminders=ReminderPolicy(1, 1), survey_delay=None)  # type: ignore[arg-type]
    assert await s.schedule(TIMES, DWELLS) == 1
    assert rec.due == [(FollowUp.PICKUP_REMINDER, "A", READY + timedelta(days=1))]
