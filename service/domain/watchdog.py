"""The consumer watchdog's rules: stalled = no fetch for longer than the limit while records wait;
and a partition's commits stalled = its committed offset stuck for longer than a limit while
records wait on it.

A quiet topic is not a stall (nothing waits), and a long batch is not one either while it stays
under the limit; the limit must exceed the longest legitimate gap between fetches (a batch at
the provider rate limit, the longest retry or hold backoff).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.domain.model import Partition


@dataclass(slots=True)
class StallWatch:
    limit_s: float
    last_fetch: float

    def fetched(self, now: float) -> None:
        self.last_fetch = now

    def idle_s(self, now: float) -> float:
        return max(0.0, now - self.last_fetch)

    def stalled(self, now: float, lag: int) -> bool:
        return lag > 0 and self.idle_s(now) > self.limit_s


@dataclass(frozen=True, slots=True)
class CommitStall:
    """What the commit watch sees: how many partitions are stuck, and the longest wait."""

    stalled: int  # partitions with records waiting whose committed offset is stuck past the limit
    longest_s: float  # the longest any partition with records waiting has gone without advancing


@dataclass(slots=True)
class CommitWatch:
    """The commit-progress rule: a partition is stalled when records wait on it (lag past its
    committed offset) and its committed offset has not moved for longer than the limit.

    A consumer that fetches but never commits (a batch retried for ever, a record held for ever)
    passes the fetch watchdog above; this catches it. The clock of a partition starts when its
    committed offset last moved or when records began to wait on it, whichever is later: a
    partition quiet for hours is not stalled the moment a record arrives. Partitions no longer
    reported (revoked) are forgotten.
    """

    limit_s: float
    _marks: dict[Partition, tuple[int, float]] = field(default_factory=dict)  # offset, since

    def committed(self, partition: Partition, offset: int, now: float) -> None:
        """The partition's committed offset is ``offset`` (a commit, or where consumption began)."""
        mark = self._marks.get(partition)
        if mark is None or mark[0] != offset:
            self._marks[partition] = (offset, now)

    def check(self, now: float, waiting: Mapping[Partition, int]) -> CommitStall:
        """``waiting``: per assigned partition with a known committed offset, the records past it."""
        for gone in self._marks.keys() - waiting.keys():
            del self._marks[gone]
        stalled, longest = 0, 0.0
        for partition, lag in waiting.items():
            mark = self._marks.get(partition)
            if mark is None:
                continue  # no committed offset known yet: nothing to measure from
            if lag <= 0:
                self._marks[partition] = (mark[0], now)  # nothing waits: the clock starts afresh
                continue
            idle = max(0.0, now - mark[1])
            longest = max(longest, idle)
            stalled += idle > self.limit_s
        return CommitStall(stalled, longest)
