"""The pickup-reminder policy, as a table of fixed times: due after N days, at most M, never after
pickup, never two in a bunch, none once too late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.reminders import ReminderDecision, ReminderPolicy, ReminderVerdict
from service.settings import load_settings

READY = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Hong Kong
D, S = timedelta(days=1), timedelta(seconds=1)
POLICY = ReminderPolicy(after_days=3, max_reminders=2)
V = ReminderVerdict


@pytest.mark.parametrize(
    ("now", "sent", "last_sent_at", "expected"),
    [
        (READY, 0, None, ReminderDecision(V.NOT_YET, 1, READY + 3 * D)),
        (READY + 3 * D - S, 0, None, ReminderDecision(V.NOT_YET, 1, READY + 3 * D)),
        (READY + 3 * D, 0, None, ReminderDecision(V.DUE, 1, READY + 3 * D)),  # exactly N days: due
        (READY + 4 * D, 0, None, ReminderDecision(V.DUE, 1, READY + 3 * D)),
        (READY + 3 * D, 1, READY + 3 * D, ReminderDecision(V.NOT_YET, 2, READY + 6 * D)),
        (READY + 6 * D, 1, READY + 3 * D, ReminderDecision(V.DUE, 2, READY + 6 * D)),
        # the first went out late (quiet hours, an outage): the second keeps N days from it
        (READY + 6 * D, 1, READY + 5 * D, ReminderDecision(V.NOT_YET, 2, READY + 8 * D)),
        (READY + 8 * D, 1, READY + 5 * D, ReminderDecision(V.DUE, 2, READY + 8 * D)),
        (READY + 7 * D, 2, READY + 6 * D, ReminderDecision(V.EXHAUSTED)),  # at most M
        (READY + 30 * D, 5, None, ReminderDecision(V.EXHAUSTED)),
        # too late to remind of anything: (M + 1) * N days after ready, sent or not
        (READY + 9 * D, 0, None, ReminderDecision(V.LAPSED)),
        (READY + 9 * D - S, 0, None, ReminderDecision(V.DUE, 1, READY + 3 * D)),
        (READY + 8 * D, 1, READY + 7 * D, ReminderDecision(V.LAPSED)),  # the second would be due at 10 d
    ],
)
def test_when_a_reminder_is_due(
    now: datetime, sent: int, last_sent_at: datetime | None, expected: ReminderDecision
) -> None:
    assert POLICY.decide(ready_at=READY, now=now, sent=sent, last_sent_at=last_sent_at) == expected


@pytest.mark.parametrize("now", [READY, READY + 3 * D, READY + 6 * D, READY + 60 * D])
@pytest.mark.parametrize("sent", [0, 1, 2])
def test_never_once_the_bike_is_picked_up(now: datetime, sent: int) -> None:
    decision = POLICY.decide(ready_at=READY, now=now, sent=sent, picked_up=True)
    assert decision == ReminderDecision(V.PICKED_UP)


def test_with_no_reminders_none_is_ever_due() -> None:
    off = ReminderPolicy(after_days=3, max_reminders=0)
    assert off.decide(ready_at=READY, now=READY + 4 * D) == ReminderDecision(V.OFF)
    assert off.decide(ready_at=READY, now=READY + 4 * D, picked_up=True).verdict is V.PICKED_UP


def test_reminder_k_is_due_k_times_n_days_after_ready() -> None:
    policy = ReminderPolicy(after_days=2, max_reminders=3)
    assert [policy.due_at(READY, k) for k in (1, 2, 3)] == [READY + 2 * D, READY + 4 * D, READY + 6 * D]
    assert policy.lapses_at(READY) == READY + 8 * D
    for k in (0, 4):
        with pytest.raises(ValueError, match="is not one of 1 to 3"):
            policy.due_at(READY, k)


@pytest.mark.parametrize(
    ("after_days", "max_reminders", "message"),
    [
        (0, 1, "after_days must be 1 to 30"),
        (31, 1, "after_days must be 1 to 30"),
        (3, -1, "max_reminders must be 0 to 5"),
        (3, 6, "max_reminders must be 0 to 5"),
        (13, 5, "over 60 days"),
    ],
)
def test_a_policy_out_of_bounds_is_refused(after_days: int, max_reminders: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReminderPolicy(after_days, max_reminders)


def test_a_negative_count_is_a_bug() -> None:
    with pytest.raises(ValueError, match="negative"):
        POLICY.decide(ready_at=READY, now=READY, sent=-1)


def test_the_settings_make_a_valid_policy() -> None:
    s = load_settings(pickup_reminder_after_days=30, pickup_reminder_max=2)
    policy = ReminderPolicy(s.pickup_reminder_after_days, s.pickup_reminder_max)
    assert policy.due_at(READY, 2) == READY + 60 * D
