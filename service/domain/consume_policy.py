"""The consume loop's rules, as values: how long to wait before a failed batch is read again,
when to look for the poison record in it, how long to wait before held records are read again,
and which offsets to commit.

    a batch fails         -> failures + 1; rewind; pause retry_backoff_s[failures - 1] (the last one after)
    failures >= poison_attempts and the database answers
                          -> process the batch one record at a time (a record still failing is dead-lettered)
    a batch is processed  -> failures = 0; commit each partition up to its first unfinished record
      with held records   -> rewind to them; pause hold_backoff_s[holds] and holds + 1
                             (no pause while stopping or draining for a rebalance: holds unchanged)
      with none held      -> holds = 0

The counts live in ``Attempts``, a value: the policy returns the next one with the pause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.domain.model import InboundRecord, Partition

RETRY_BACKOFF_S: tuple[float, ...] = (0.5, 1, 2, 5, 10)
HOLD_BACKOFF_S: tuple[float, ...] = (1, 2, 5, 10, 30)  # every provider down: read the held records again


@dataclass(frozen=True, slots=True)
class Attempts:
    """Where the loop stands: failures of the batch at hand, batches in a row that ended held."""

    failures: int = 0
    holds: int = 0


@dataclass(frozen=True, slots=True)
class ConsumePolicy:
    poison_attempts: int = 5  # NOTIFIER_POISON_ATTEMPTS
    retry_backoff_s: tuple[float, ...] = RETRY_BACKOFF_S
    hold_backoff_s: tuple[float, ...] = HOLD_BACKOFF_S

    def __post_init__(self) -> None:
        if self.poison_attempts < 1:
            raise ValueError("poison_attempts must be >= 1")
        if not (self.retry_backoff_s and self.hold_backoff_s):
            raise ValueError("the back-off tables must not be empty")

    def failed(self, at: Attempts) -> Attempts:
        """The batch at hand failed once more."""
        return Attempts(at.failures + 1, at.holds)

    def search_poison(self, at: Attempts) -> bool:
        """Whether to process the failed batch record by record (the caller also needs the
        database up: a failure while it is down is an outage, not poison)."""
        return at.failures >= self.poison_attempts

    def retry_pause(self, at: Attempts) -> float:
        """Seconds to wait before a batch that failed ``at.failures`` times is read again."""
        if at.failures < 1:
            raise ValueError("a retry follows a failure")
        return _step(self.retry_backoff_s, at.failures - 1)

    def processed(self, at: Attempts, *, held: bool, waiting_allowed: bool) -> tuple[Attempts, float]:
        """The batch was processed (committed up to its first held record, if any): the next
        counts and the seconds to wait before reading on. ``waiting_allowed``: False while the
        service stops or drains for a rebalance, when held records are not waited for."""
        if not held:
            return Attempts(), 0.0
        if not waiting_allowed:
            return Attempts(0, at.holds), 0.0
        return Attempts(0, at.holds + 1), _step(self.hold_backoff_s, at.holds)


def _step(table: tuple[float, ...], index: int) -> float:
    return table[min(index, len(table) - 1)]


def next_offsets(
    batch: Mapping[Partition, Sequence[InboundRecord]], unfinished: Mapping[Partition, int] | None = None
) -> dict[Partition, int]:
    """The offsets to commit once the batch is durable: per partition, its first unfinished record,
    or one past its last record when all of it finished."""
    unfinished = unfinished or {}
    out: dict[Partition, int] = {}
    for partition, records in batch.items():
        if records:
            end = records[-1].offset + 1
            out[partition] = min(unfinished.get(partition, end), end)
    return out


def first_offsets(batch: Mapping[Partition, Sequence[InboundRecord]]) -> dict[Partition, int]:
    """Where each partition of the batch began: the offsets to rewind to when it failed."""
    return {partition: records[0].offset for partition, records in batch.items() if records}


def lag(assigned: Mapping[Partition, int | None], positions: Mapping[Partition, int]) -> int:
    """Records waiting on the assigned partitions (``assigned``: each one's high watermark, None
    while unknown), past the next offset to read (a partition not read yet counts nothing)."""
    waiting = 0
    for partition, high in assigned.items():
        if high is not None:
            waiting += max(0, high - positions.get(partition, high))
    return waiting
