"""Quiet hours in Hong Kong time: the window across midnight and not, when a notification goes,
and the pacing of the release after the window."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta

import pytest

from service.domain.milestones import Milestone
from service.domain.quiet_hours import (
    HKT,
    QuietHours,
    QuietWindow,
    parse_breakthrough,
    release_budget,
    release_times,
)

NIGHT = QuietWindow.parse("21:30-09:00")
LUNCH = QuietWindow.parse("13:00-14:00")


def hkt(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=HKT)


@pytest.mark.parametrize(
    ("at", "inside", "end"),
    [
        (hkt(20, 21, 29, 59), False, None),
        (hkt(20, 21, 30), True, hkt(21, 9)),  # the start is inside
        (hkt(20, 23, 59, 59), True, hkt(21, 9)),  # before midnight: ends tomorrow
        (hkt(21, 0, 0), True, hkt(21, 9)),  # after midnight: ends today
        (hkt(21, 2, 0), True, hkt(21, 9)),
        (hkt(21, 8, 59, 59), True, hkt(21, 9)),
        (hkt(21, 9, 0), False, None),  # the end is not
        (hkt(21, 12, 0), False, None),
        (datetime(2026, 11, 20, 18, 0, tzinfo=UTC), True, hkt(21, 9)),  # 02:00 HKT given in UTC
        (datetime(2026, 11, 20, 13, 29, tzinfo=UTC), False, None),  # 21:29 HKT
        (datetime(2026, 12, 31, 17, 0, tzinfo=UTC), True, datetime(2027, 1, 1, 9, tzinfo=HKT)),  # new year
    ],
)
def test_a_window_across_midnight(at: datetime, inside: bool, end: datetime | None) -> None:
    assert NIGHT.contains(at) is inside
    assert NIGHT.end_of(at) == end
    if end is not None:
        assert NIGHT.end_of(at).tzinfo is UTC  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("at", "end"),
    [
        (hkt(20, 12, 59), None),
        (hkt(20, 13, 0), hkt(20, 14)),
        (hkt(20, 13, 59), hkt(20, 14)),
        (hkt(20, 14), None),
    ],
)
def test_a_window_within_a_day(at: datetime, end: datetime | None) -> None:
    assert LUNCH.end_of(at) == end
    assert not LUNCH.crosses_midnight
    assert NIGHT.crosses_midnight


def test_hong_kong_has_no_daylight_saving_the_window_is_the_same_all_year() -> None:
    for month in range(1, 13):
        at = datetime(2026, month, 15, 18, 0, tzinfo=UTC)  # 02:00 HKT every day of the year
        assert NIGHT.end_of(at) == datetime(2026, month, 16, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("21:30-09:00", time(21, 30), time(9)),
        (" 22:00 – 07:30 ", time(22), time(7, 30)),
        ("00:00-23:59", time(0), time(23, 59)),
    ],
)
def test_parse(text: str, start: time, end: time) -> None:
    w = QuietWindow.parse(text)
    assert (w.start, w.end) == (start, end)
    assert str(QuietWindow.parse(str(w))) == str(w)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("21:30", "START-END"),
        ("21:30-09:00-10:00", "START-END"),
        ("24:00-09:00", "not a time"),
        ("21:60-09:00", "not a time"),
        ("9:00-21:00", "not a time"),
        ("21:30-21:30", "must differ"),
        ("", "START-END"),
    ],
)
def test_a_bad_window_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuietWindow.parse(text)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        NIGHT.contains(datetime(2026, 11, 21, 2, 0))  # the point of the test


def test_breakthrough_milestones_go_now_the_others_at_the_windows_end() -> None:
    policy = QuietHours(NIGHT, frozenset({Milestone.READY_FOR_PICKUP}))
    at = hkt(21, 2)
    assert policy.release_at(Milestone.READY_FOR_PICKUP, at) is None
    assert policy.release_at(Milestone.CUSTOMS_CLEARED, at) == hkt(21, 9)
    assert policy.release_at(Milestone.CUSTOMS_CLEARED, hkt(21, 10)) is None
    assert QuietHours().release_at(Milestone.CUSTOMS_CLEARED, at) is None  # no window: always now


def test_parse_breakthrough() -> None:
    assert parse_breakthrough([" Ready_For_Pickup ", ""]) == {Milestone.READY_FOR_PICKUP}
    with pytest.raises(ValueError, match="not a milestone"):
        parse_breakthrough(["picked_up_by_mistake"])


def test_release_times_are_paced_from_the_windows_end_not_a_burst() -> None:
    end = hkt(21, 9).astimezone(UTC)
    times = release_times(end, 0, 5, rate_per_s=2.0)
    assert times[0] == end  # the first goes at the end itself, never before
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [0.5] * 4
    assert release_times(end, 10, 1, rate_per_s=2.0) == [end + timedelta(seconds=5)]  # slots continue
    assert release_times(end, 3, 0, rate_per_s=2.0) == []
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive"):
            release_times(end, 0, 1, rate_per_s=bad)
    with pytest.raises(ValueError, match="from 0"):
        release_times(end, -1, 1, rate_per_s=1.0)


@pytest.mark.parametrize(
    ("rate", "interval", "share", "budget"),
    [(5.0, 1.0, 1.0, 5), (5.0, 1.0, 0.5, 3), (5.0, 1.0, 0.0, 1), (0.1, 1.0, 1.0, 1), (5.0, 2.0, 2.0, 10)],
)
def test_release_budget_is_the_instances_share_of_the_rate(
    rate: float, interval: float, share: float, budget: int
) -> None:
    assert release_budget(rate, interval, share) == budget
