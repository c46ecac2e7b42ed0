"""The consume loop's back-off and poison rules, and its offsets, as tables of values."""

from __future__ import annotations

import pytest

from service.domain.consume_policy import (
    Attempts,
    ConsumePolicy,
    first_offsets,
    lag,
    next_offsets,
)
from service.domain.model import InboundRecord

POLICY = ConsumePolicy(poison_attempts=3)


@pytest.mark.parametrize(
    ("failures", "pause_s"),
    [(1, 0.5), (2, 1), (3, 2), (4, 5), (5, 10), (6, 10), (50, 10)],
)
def test_a_failed_batch_waits_longer_each_time_up_to_the_last_step(failures: int, pause_s: float) -> None:
    assert POLICY.retry_pause(Attempts(failures=failures)) == pause_s


def test_a_retry_pause_needs_a_failure() -> None:
    with pytest.raises(ValueError, match=r"^a retry follows a failure$"):
        POLICY.retry_pause(Attempts())


@pytest.mark.parametrize(
    ("poison_attempts", "failures", "search"),
    [(3, 1, False), (3, 2, False), (3, 3, True), (3, 4, True), (1, 1, True), (5, 4, False), (5, 5, True)],
)
def test_the_poison_is_searched_for_from_the_poison_attempts_th_failure_on(
    poison_attempts: int, failures: int, search: bool
) -> None:
    assert ConsumePolicy(poison_attempts=poison_attempts).search_poison(Attempts(failures=failures)) is search


def test_a_failure_counts_once_more_and_keeps_the_holds() -> None:
    assert POLICY.failed(Attempts(failures=2, holds=4)) == Attempts(failures=3, holds=4)


# Each row: the counts before, whether records were held, whether waiting is allowed (not stopping
# nor draining), the counts after and the pause.
@pytest.mark.parametrize(
    ("before", "held", "waiting_allowed", "after", "pause_s"),
    [
        (Attempts(0, 0), False, True, Attempts(0, 0), 0.0),  # all finished: read on at once
        (Attempts(4, 3), False, True, Attempts(0, 0), 0.0),  # a success forgets failures and holds
        (Attempts(0, 0), True, True, Attempts(0, 1), 1),  # held: 1 s, then 2, 5, 10, 30, 30
        (Attempts(0, 1), True, True, Attempts(0, 2), 2),
        (Attempts(0, 2), True, True, Attempts(0, 3), 5),
        (Attempts(0, 3), True, True, Attempts(0, 4), 10),
        (Attempts(0, 4), True, True, Attempts(0, 5), 30),
        (Attempts(0, 9), True, True, Attempts(0, 10), 30),
        (Attempts(2, 1), True, True, Attempts(0, 2), 2),  # a poison search that held: failures reset
        (Attempts(0, 3), True, False, Attempts(0, 3), 0.0),  # stopping or draining: no wait, holds kept
        (Attempts(3, 0), True, False, Attempts(0, 0), 0.0),
    ],
)
def test_after_a_processed_batch(
    before: Attempts, held: bool, waiting_allowed: bool, after: Attempts, pause_s: float
) -> None:
    assert POLICY.processed(before, held=held, waiting_allowed=waiting_allowed) == (after, pause_s)


def test_a_policy_refuses_no_attempts_or_empty_tables() -> None:
    with pytest.raises(ValueError, match=r"^poison_attempts must be >= 1$"):
        ConsumePolicy(poison_attempts=0)
    with pytest.raises(ValueError, match=r"^the back-off tables must not be empty$"):
        ConsumePolicy(retry_backoff_s=())
    with pytest.raises(ValueError, match=r"^the back-off tables must not be empty$"):
        ConsumePolicy(hold_backoff_s=())


def test_custom_tables_are_followed() -> None:
    policy = ConsumePolicy(poison_attempts=2, retry_backoff_s=(7,), hold_backoff_s=(3, 4))
    assert [policy.retry_pause(Attempts(failures=f)) for f in (1, 2, 3)] == [7, 7, 7]
    assert [policy.processed(Attempts(0, h), held=True, waiting_allowed=True)[1] for h in (0, 1, 2)] == [
        3,
        4,
        4,
    ]


A, B = ("t", 0), ("t", 1)


def _records(partition: tuple[str, int], offsets: range) -> list[InboundRecord]:
    return [InboundRecord(partition[0], partition[1], o, b"k", b"v", 1) for o in offsets]


@pytest.mark.parametrize(
    ("batch", "unfinished", "offsets"),
    [
        # a finished batch commits one past each partition's last record
        ({A: range(10, 15), B: range(3, 4)}, None, {A: 15, B: 4}),
        # a partition with an unfinished record commits only up to it
        ({A: range(10, 15), B: range(3, 6)}, {A: 12}, {A: 12, B: 6}),
        # an unfinished first record commits nothing new
        ({A: range(10, 15)}, {A: 10}, {A: 10}),
        # an unfinished offset past the batch never commits beyond it
        ({A: range(10, 15)}, {A: 99}, {A: 15}),
        # a partition that brought nothing commits nothing
        ({A: range(0), B: range(3, 4)}, None, {B: 4}),
    ],
)
def test_the_offsets_committed_after_a_batch(
    batch: dict[tuple[str, int], range],
    unfinished: dict[tuple[str, int], int] | None,
    offsets: dict[tuple[str, int], int],
) -> None:
    assert next_offsets({p: _records(p, r) for p, r in batch.items()}, unfinished) == offsets


def test_a_failed_batch_rewinds_each_partition_to_its_first_record() -> None:
    assert first_offsets({A: _records(A, range(10, 15)), B: _records(B, range(3, 4)), ("t", 2): []}) == {
        A: 10,
        B: 3,
    }


@pytest.mark.parametrize(
    ("assigned", "positions", "waiting"),
    [
        ({A: 100, B: 50}, {A: 90, B: 50}, 10),
        ({A: 100}, {}, 0),  # not read yet: nothing counted
        ({A: None}, {A: 3}, 0),  # high watermark unknown
        ({A: 5}, {A: 9}, 0),  # never negative
        ({A: 10, B: 20}, {A: 0, B: 0}, 30),
    ],
)
def test_lag(
    assigned: dict[tuple[str, int], int | None], positions: dict[tuple[str, int], int], waiting: int
) -> None:
    assert lag(assigned, positions) == waiting
