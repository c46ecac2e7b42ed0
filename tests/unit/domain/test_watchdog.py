from __future__ import annotations

from typing import Any

import pytest

from service.domain.watchdog import CommitStall, CommitWatch, StallWatch


def test_no_fetch_for_longer_than_the_limit_while_records_wait_is_a_stall() -> None:
    watch = StallWatch(limit_s=120, last_fetch=1000)
    assert not watch.stalled(1100, lag=50)  # a long batch, still inside the limit
    assert watch.stalled(1121, lag=50)


@pytest.mark.parametrize(
    ("now", "lag", "stalled"), [(1120, 1, False), (1120.001, 1, True), (1121, 0, False), (1121, 1, True)]
)
def test_a_stall_is_one_record_waiting_past_the_limit(now: float, lag: int, stalled: bool) -> None:
    assert StallWatch(limit_s=120, last_fetch=1000).stalled(now, lag) is stalled


@pytest.mark.parametrize(("now", "idle"), [(1000, 0), (999, 0), (1000.5, 0.5)])
def test_idle_time_counts_from_the_last_fetch_and_is_never_negative(now: float, idle: float) -> None:
    assert StallWatch(limit_s=120, last_fetch=1000).idle_s(now) == idle


def test_a_quiet_topic_is_not_a_stall() -> None:
    watch = StallWatch(limit_s=120, last_fetch=1000)
    assert not watch.stalled(5000, lag=0)


def test_a_fetch_resets_the_clock() -> None:
    watch = StallWatch(limit_s=120, last_fetch=1000)
    watch.fetched(1200)
    assert not watch.stalled(1250, lag=10)
    assert watch.idle_s(1250) == 50


# The commit watch, on one partition P, limit 60 s. Each row: the events in order — ("commit",
# offset, t) or ("check", lag, t, expected stalled count, expected longest wait) — and what it shows.
P = ("t", 0)
_COMMIT_TABLE = [
    (  # a batch retried for ever: read from 10, never committed past it, records waiting
        [("commit", 10, 0), ("check", 5, 30, 0, 30), ("check", 5, 60, 0, 60), ("check", 5, 61, 1, 61)],
        "stuck past the limit while records wait",
    ),
    (  # the offset moves: the clock starts again from the commit
        [("commit", 10, 0), ("check", 5, 50, 0, 50), ("commit", 12, 55), ("check", 3, 100, 0, 45)],
        "an advancing partition is not stalled",
    ),
    (  # committing the same offset again (a held record) is no progress
        [("commit", 10, 0), ("commit", 10, 40), ("check", 5, 61, 1, 61)],
        "the same offset again is no progress",
    ),
    (  # quiet for an hour, then a record arrives: measured from when it began to wait
        [("commit", 10, 0), ("check", 0, 3600, 0, 0), ("check", 1, 3630, 0, 30), ("check", 1, 3661, 1, 61)],
        "a quiet partition is not stalled the moment a record arrives",
    ),
    (  # caught up again: nothing waits, nothing stalled, whatever the time
        [("commit", 10, 0), ("check", 5, 100, 1, 100), ("check", 0, 101, 0, 0)],
        "nothing waiting is never a stall",
    ),
    (  # records waiting the moment the offset is known: no time has passed yet
        [("commit", 10, 0), ("check", 5, 0, 0, 0)],
        "the wait starts at zero",
    ),
    (  # quiet, then records wait and the same offset is committed again: the clock is not restarted
        [("commit", 10, 0), ("check", 0, 100, 0, 0), ("commit", 10, 150), ("check", 3, 200, 1, 100)],
        "a quiet spell keeps the committed offset",
    ),
    (  # no committed offset known (not read yet): nothing to measure from
        [("check", 5, 1000, 0, 0)],
        "an unread partition is left to the fetch watchdog",
    ),
]


@pytest.mark.parametrize(("events", "what"), _COMMIT_TABLE, ids=[w for _, w in _COMMIT_TABLE])
def test_commit_watch(events: list[tuple[Any, ...]], what: str) -> None:
    watch = CommitWatch(limit_s=60)
    for kind, value, now, *expected in events:
        if kind == "commit":
            watch.committed(P, value, now)
        else:
            assert watch.check(now, {P: value}) == CommitStall(*expected), what


def test_commit_watch_counts_each_stalled_partition_and_forgets_revoked_ones() -> None:
    a, b, c = ("t", 0), ("t", 1), ("u", 0)
    watch = CommitWatch(limit_s=60)
    for p in (a, b, c):
        watch.committed(p, 0, 0)
    assert watch.check(100, {a: 1, b: 2, c: 0}) == CommitStall(2, 100)
    assert watch.check(101, {c: 0}) == CommitStall(0, 0)  # a and b moved to another member
    watch.committed(a, 0, 200)  # a comes back, read from the same offset: measured afresh
    assert watch.check(230, {a: 1}) == CommitStall(0, 30)


def test_commit_watch_measures_every_partition_past_an_unread_or_quiet_one() -> None:
    unread, quiet, stuck = ("t", 0), ("t", 1), ("t", 2)
    watch = CommitWatch(limit_s=60)
    watch.committed(quiet, 0, 0)
    watch.committed(stuck, 0, 0)
    assert watch.check(100, {unread: 5, quiet: 0, stuck: 2}) == CommitStall(1, 100)
    assert watch.check(101, {quiet: 0, unread: 5, stuck: 2}) == CommitStall(1, 101)
