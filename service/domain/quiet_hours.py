"""Quiet hours in Hong Kong time: when a notification may not go now, when it goes instead, and how
the sends held for a window's end are paced out after it.

Hong Kong keeps UTC+8 all year (no daylight saving since 1979), so the window is plain arithmetic
on a fixed offset: no zone database, no ambiguous or missing local times. A window may cross
midnight (21:30-09:00: from 21:30 one day to 09:00 the next) or not (13:00-14:00).

Pacing: the notifications scheduled for one window's end are given distinct release times, one
every ``1 / rate`` seconds from the end, in the order they were scheduled (``release_times``; the
store keeps the count per window durably, so every instance and every restart continues the same
sequence). A release job also takes at most ``release_budget`` a run, its share of that rate, so a
backlog (the service was down at the window's end) is not a burst either. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Final

from service.domain.milestones import Milestone

#: Hong Kong Time, a fixed UTC+8.
HKT: Final = timezone(timedelta(hours=8), "HKT")

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAY: Final = timedelta(days=1)


def _hhmm(text: str) -> time:
    m = _HHMM.match(text.strip())
    if m is None:
        raise ValueError(f"'{text.strip()[:10]}' is not a time HH:MM (00:00 to 23:59)")
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """From ``start`` to ``end`` every day, Hong Kong time; ``start`` is inside, ``end`` is not."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a quiet window's start and end must differ")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("a quiet window's times are Hong Kong wall-clock times, without a zone")

    @classmethod
    def parse(cls, text: str) -> QuietWindow:
        """``21:30-09:00`` (also with an en dash or ``–``); ``ValueError`` saying what is wrong."""
        parts = re.split(r"\s*[-\u2013]\s*", text.strip())
        if len(parts) != 2:
            raise ValueError("a quiet window is START-END in Hong Kong time, e.g. 21:30-09:00")
        return cls(_hhmm(parts[0]), _hhmm(parts[1]))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def contains(self, at: datetime) -> bool:
        """Whether the instant ``at`` (aware) falls inside the window."""
        t = _local(at).time()
        if self.crosses_midnight:
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def end_of(self, at: datetime) -> datetime | None:
        """The end (in UTC) of the window ``at`` is inside; None when ``at`` is outside it."""
        if not self.contains(at):
            return None
        local = _local(at)
        end = datetime.combine(local.date(), self.end, HKT)
        if end <= local:  # crossing midnight, before it: the window ends tomorrow
            end += _DAY
        return end.astimezone(UTC)


def _local(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no instant: give it a zone")
    return at.astimezone(HKT)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """The policy: the window (None: no quiet hours) and the milestones that may break through it."""

    window: QuietWindow | None = None
    breakthrough: frozenset[Milestone] = frozenset()

    def release_at(self, milestone: Milestone, at: datetime) -> datetime | None:
        """When a notification of ``milestone`` decided at ``at`` may go: None for now, else the
        window's end (UTC)."""
        if self.window is None or milestone in self.breakthrough:
            return None
        return self.window.end_of(at)


def release_times(window_end: datetime, first_slot: int, count: int, rate_per_s: float) -> list[datetime]:
    """The release times of slots ``first_slot .. first_slot + count - 1`` of a window's end, one
    every ``1 / rate_per_s`` seconds from the end itself (slot 0 goes at the end)."""
    if rate_per_s <= 0 or not math.isfinite(rate_per_s):
        raise ValueError("the release rate must be a positive number per second")
    if first_slot < 0 or count < 0:
        raise ValueError("slots count from 0")
    return [window_end + timedelta(seconds=(first_slot + i) / rate_per_s) for i in range(count)]


def release_budget(rate_per_s: float, interval_s: float, share: float) -> int:
    """How many due sends one run of the release job takes: its share of the group's release rate
    over the time between runs, rounded up, at least one (so a small share still moves)."""
    if rate_per_s <= 0 or interval_s <= 0:
        raise ValueError("the release rate and interval must be positive")
    share = min(1.0, max(0.0, share))
    return max(1, math.ceil(rate_per_s * interval_s * share))


def parse_breakthrough(names: Iterable[str]) -> frozenset[Milestone]:
    """Milestone names (``ready_for_pickup``) that may break through quiet hours; ValueError for an unknown one."""
    found = set()
    for name in names:
        key = name.strip().lower()
        if not key:
            continue
        try:
            found.add(Milestone(key))
        except ValueError:
            known = ", ".join(m.value for m in Milestone)
            raise ValueError(f"'{key[:40]}' is not a milestone (one of: {known})") from None
    return frozenset(found)
