"""The dwell report's pure parts: a bounded range of Hong Kong days, and tables of groups that
never show a group small enough to single out one pickup."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.domain.dwell_report import DayRange, DwellGroup, Grouping, day_range, format_report

TODAY = date(2026, 12, 1)


def test_the_default_range_is_the_last_28_days_to_today() -> None:
    assert day_range(None, None, today=TODAY) == DayRange(date(2026, 11, 4), TODAY)
    assert day_range(None, "2026-11-30", today=TODAY) == DayRange(date(2026, 11, 3), date(2026, 11, 30))


def test_the_range_is_of_whole_hong_kong_days() -> None:
    days = day_range("2026-11-01", "2026-11-30", today=TODAY)
    assert days.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert days.end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_a_range_of_the_longest_length_is_accepted_one_day_more_is_not() -> None:
    assert day_range("2025-12-01", "2026-12-01", today=TODAY, max_days=366).first == date(2025, 12, 1)
    with pytest.raises(ValueError, match="the range is 367 days; at most 366"):
        day_range("2025-11-30", "2026-12-01", today=TODAY, max_days=366)


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2026-11-30", "2026-11-01", "--from 2026-11-30 is after --to 2026-11-01"),
        (None, "2026-12-02", "is after today"),
        ("1999-12-31", "2000-01-01", "--from must be 2000-01-01 or later"),
        ("yesterday", None, "--from must be a date YYYY-MM-DD, not 'yesterday'"),
        (None, "2026-02-30", "--to must be a date"),
    ],
)
def test_a_bad_range_is_refused_naming_the_option(first: str | None, last: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        day_range(first, last, today=TODAY)


def _g(place: str | None, count: int, *, weekday: int | None = None, hour: int | None = None) -> DwellGroup:
    return DwellGroup(place, weekday, hour, count, (3600.0, 7200.0, 2 * 86400.0, 3 * 86400.0))


def test_the_table_shows_percentiles_readably_and_hides_small_groups() -> None:
    days = DayRange(date(2026, 11, 1), date(2026, 11, 30))
    text = format_report([_g("Kwun Tong", 12), _g("Sha Tin", 2)], Grouping.PLACE, days, min_count=5)
    lines = text.splitlines()
    assert (
        lines[0]
        == "dwell time, ready for pickup to picked up, pickups 2026-11-01 to 2026-11-30 (Hong Kong time)"
    )
    assert lines[1].split() == ["place", "pickups", "p50", "p75", "p90", "p95"]
    assert lines[2].split() == ["Kwun", "Tong", "12", "1.0h", "2.0h", "2.0d", "3.0d"]
    assert "Sha Tin" not in text
    assert lines[-1] == "2 pickup(s) in groups of fewer than 5 not shown"


def test_weekday_and_hour_are_named() -> None:
    days = DayRange(date(2026, 11, 1), date(2026, 11, 30))
    text = format_report([_g(None, 5, weekday=7, hour=9)], Grouping.WEEKDAY_HOUR, days, min_count=5)
    assert text.splitlines()[2].startswith("Sun 09:00-09:59")


def test_an_empty_range_says_so() -> None:
    days = DayRange(date(2026, 11, 1), date(2026, 11, 30))
    assert format_report([], Grouping.ALL, days).splitlines()[-1] == "no completed pickups in this range"
