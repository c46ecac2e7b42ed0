"""What a due follow-up comes to, with fixed times: send which, later when, or drop why."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from service.domain.due_sends import DueKind
from service.domain.follow_up_plan import (
    ALREADY_SENT,
    NO_READY_TIME,
    SURVEY_OFF,
    DueFollowUp,
    Plan,
    Step,
    due_kind,
    next_reminder_at,
    plan_reminder,
    plan_survey,
)
from service.domain.follow_ups import FollowUp
from service.domain.milestones import Milestone
from service.domain.quiet_hours import HKT, QuietHours, QuietWindow
from service.domain.reminders import ReminderPolicy

READY = datetime(2026, 11, 20, 11, 0, tzinfo=HKT)
DAY = timedelta(days=1)
POLICY = ReminderPolicy(after_days=3, max_reminders=2)
NIGHTS = QuietHours(QuietWindow.parse("21:30-09:00"), frozenset(Milestone))  # every milestone breaks through


def due(kind: FollowUp = FollowUp.PICKUP_REMINDER, **kw: object) -> DueFollowUp:
    base = DueFollowUp(
        uuid.uuid4(), kind, uuid.uuid4(), "A", "SF1", "A-READY_FOR_PICKUP-1", READY, 1, None, READY, None
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "now", "plan"),
    [
        (due(), READY + 3 * DAY - timedelta(seconds=1), Plan(Step.LATER, at=READY + 3 * DAY)),
        (due(), READY + 3 * DAY, Plan(Step.SEND, number=1, days_waiting=3)),
        (due(), READY + 4 * DAY + timedelta(hours=5), Plan(Step.SEND, number=1, days_waiting=4)),
        (due(picked_up_at=READY + DAY), READY + 3 * DAY, Plan(Step.DROP, why="picked_up")),
        (
            due(decided=1, last_decided_at=READY + 3 * DAY),
            READY + 5 * DAY,
            Plan(Step.LATER, at=READY + 6 * DAY),
        ),
        (
            due(decided=1, last_decided_at=READY + 3 * DAY),
            READY + 6 * DAY,
            Plan(Step.SEND, number=2, days_waiting=6),
        ),
        # sent late (an outage): the next waits N days from it, not from ready
        (
            due(decided=1, last_decided_at=READY + 5 * DAY),
            READY + 6 * DAY,
            Plan(Step.LATER, at=READY + 8 * DAY),
        ),
        (due(decided=2, last_decided_at=READY + 6 * DAY), READY + 8 * DAY, Plan(Step.DROP, why="exhausted")),
        (due(), READY + 9 * DAY, Plan(Step.DROP, why="lapsed")),
        (due(ready_at=None), READY + 3 * DAY, Plan(Step.DROP, why=NO_READY_TIME)),
    ],
)
def test_a_due_reminder(row: DueFollowUp, now: datetime, plan: Plan) -> None:
    assert plan_reminder(row, POLICY, None, now) == plan


def test_reminders_off_drop_it() -> None:
    assert plan_reminder(due(), ReminderPolicy(3, 0), None, READY + 3 * DAY) == Plan(Step.DROP, why="off")


def test_a_reminder_never_breaks_through_quiet_hours() -> None:
    night = datetime(2026, 11, 24, 2, 0, tzinfo=HKT)
    assert plan_reminder(due(), POLICY, NIGHTS, night) == Plan(
        Step.LATER, at=datetime(2026, 11, 24, 9, 0, tzinfo=HKT)
    )
    assert plan_reminder(due(), POLICY, NIGHTS, night.replace(hour=9)).step == Step.SEND
    assert plan_reminder(due(), POLICY, QuietHours(), night).step == Step.SEND  # no window configured


def test_the_next_reminder_is_due_after_the_step_or_never() -> None:
    assert next_reminder_at(POLICY, ready_at=READY, decided=1, decided_at=READY + 3 * DAY) == READY + 6 * DAY
    assert next_reminder_at(POLICY, ready_at=READY, decided=1, decided_at=READY + 4 * DAY) == READY + 7 * DAY
    assert next_reminder_at(POLICY, ready_at=READY, decided=2, decided_at=READY + 6 * DAY) is None
    # a next one that would come once the reminders lapse is none
    assert next_reminder_at(POLICY, ready_at=READY, decided=1, decided_at=READY + 7 * DAY) is None


@pytest.mark.parametrize(
    ("row", "enabled", "now", "plan"),
    [
        (due(FollowUp.SURVEY), True, READY + DAY, Plan(Step.SEND, number=1)),
        (due(FollowUp.SURVEY, decided=1), True, READY + DAY, Plan(Step.DROP, why=ALREADY_SENT)),
        (due(FollowUp.SURVEY), False, READY + DAY, Plan(Step.DROP, why=SURVEY_OFF)),
    ],
)
def test_a_due_survey(row: DueFollowUp, enabled: bool, now: datetime, plan: Plan) -> None:
    assert plan_survey(row, enabled=enabled, quiet=None, now=now) == plan


def test_a_survey_due_at_night_waits_for_the_morning() -> None:
    night = datetime(2026, 11, 22, 23, 0, tzinfo=HKT)
    assert plan_survey(due(FollowUp.SURVEY), enabled=True, quiet=NIGHTS, now=night) == Plan(
        Step.LATER, at=datetime(2026, 11, 23, 9, 0, tzinfo=HKT)
    )


def test_each_follow_up_is_a_kind_of_due_send_of_the_same_value() -> None:
    assert {due_kind(k) for k in FollowUp} == {DueKind.PICKUP_REMINDER, DueKind.SURVEY}
    assert all(due_kind(k).value == k.value for k in FollowUp)
