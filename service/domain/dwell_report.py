"""``notifier report dwell``: percentiles of dwell time by pickup place and by weekday and hour.

The range is of pickup days in Hong Kong time, both ends included, at most ``MAX_DAYS`` long and
not after today; by default the last 28 days to today. Groups are of dwells, never of people:
the report names places, weekdays and hours with counts and percentiles, and a group with fewer
than ``min_count`` pickups is left out (its count shows in the total), so no one customer's
pickup can be read from a row. Pure: no I/O, today is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

HK_TZ: Final = ZoneInfo("Asia/Hong_Kong")
PERCENTILES: Final = (0.5, 0.75, 0.9, 0.95)
MAX_DAYS: Final = 366
DEFAULT_DAYS: Final = 28
DEFAULT_MIN_COUNT: Final = 5
_EARLIEST: Final = date(2000, 1, 1)
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Grouping(StrEnum):
    ALL = "all"
    PLACE = "place"
    WEEKDAY_HOUR = "weekday-hour"


@dataclass(frozen=True, slots=True)
class DwellGroup:
    place: str | None  # by place
    weekday: int | None  # by weekday and hour: ISO weekday, 1 is Monday
    hour: int | None
    count: int
    percentiles: tuple[float, ...]  # seconds, one per ``PERCENTILES``


@dataclass(frozen=True, slots=True)
class DayRange:
    """Pickup days in Hong Kong, ``first`` to ``last`` included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), HK_TZ)

    @property
    def end(self) -> datetime:
        """The start of the day after ``last``: the range is [start, end)."""
        return datetime.combine(self.last + timedelta(days=1), time(), HK_TZ)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} must be a date YYYY-MM-DD, not {text[:20]!r}") from None


def day_range(first: str | None, last: str | None, *, today: date, max_days: int = MAX_DAYS) -> DayRange:
    """The range the options ask for, checked; ``ValueError`` names the option to fix."""
    end = _day(last, "--to") if last else today
    start = _day(first, "--from") if first else end - timedelta(days=DEFAULT_DAYS - 1)
    if end > today:
        raise ValueError(f"--to {end} is after today ({today}, Hong Kong): there are no pickups yet")
    if start < _EARLIEST:
        raise ValueError(f"--from must be {_EARLIEST} or later")
    if start > end:
        raise ValueError(f"--from {start} is after --to {end}")
    if (end - start).days + 1 > max_days:
        raise ValueError(
            f"the range is {(end - start).days + 1} days; at most {max_days}: narrow --from/--to"
        )
    return DayRange(start, end)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    hours = round(seconds) / 3600  # whole seconds: the database's percentiles are floats
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"


def _label(g: DwellGroup, grouping: Grouping) -> str:
    if grouping is Grouping.PLACE:
        return g.place or "(no place)"
    if grouping is Grouping.WEEKDAY_HOUR and g.weekday is not None and g.hour is not None:
        return f"{_WEEKDAYS[g.weekday - 1]} {g.hour:02d}:00-{g.hour:02d}:59"
    return "all pickups"


def format_report(
    groups: list[DwellGroup], grouping: Grouping, days: DayRange, *, min_count: int = DEFAULT_MIN_COUNT
) -> str:
    """The report as a table; groups under ``min_count`` pickups are left out and counted."""
    shown = [g for g in groups if g.count >= min_count]
    hidden = sum(g.count for g in groups) - sum(g.count for g in shown)
    heads = ["p" + f"{p * 100:g}" for p in PERCENTILES]
    title = {Grouping.ALL: "all", Grouping.PLACE: "place", Grouping.WEEKDAY_HOUR: "picked up (HKT)"}[grouping]
    rows = [[_label(g, grouping), str(g.count), *(_duration(p) for p in g.percentiles)] for g in shown]
    table = [[title, "pickups", *heads], *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [
        f"dwell time, ready for pickup to picked up, pickups {days.first} to {days.last} (Hong Kong time)",
        *(
            "  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))])
            for r in table
        ),
    ]
    total = sum(g.count for g in groups)
    if not total:
        lines.append("no completed pickups in this range")
    if hidden:
        lines.append(f"{hidden} pickup(s) in groups of fewer than {min_count} not shown")
    return "\n".join(lines)
