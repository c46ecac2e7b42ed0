"""The consume loop: fetch a batch, have the pipeline process it, commit what finished, rewind
and wait by ``ConsumePolicy``; drain on a rebalance; watch fetches and commits for liveness
and readiness. It sees Kafka only through the ``Consumer`` port."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from service.domain.consume_policy import Attempts, ConsumePolicy, first_offsets, lag, next_offsets
from service.domain.errors import CommitRefused, ConsumerUnavailable, NotifierError
from service.domain.model import InboundRecord, Partition
from service.domain.ports import Batch, Consumer
from service.domain.watchdog import CommitStall, CommitWatch, StallWatch
from service.logs import get_logger
from service.metrics import Metrics

log = get_logger(__name__)

WATCHDOG_EVERY_S = 5.0


class Batches(Protocol):
    """What processes a batch (``service.pipeline.driver.Pipeline``): the first unfinished (held)
    offset of each partition that has one."""

    async def process_batch(self, records: Sequence[InboundRecord]) -> dict[Partition, int]: ...

    async def process_one_by_one(
        self, records: Sequence[InboundRecord], *, attempts: int
    ) -> dict[Partition, int]: ...


class Sends(Protocol):
    """The sends a rebalance pauses (``service.send.engine.DeliveryEngine``)."""

    @property
    def draining(self) -> bool: ...

    def pause_sends(self) -> None: ...

    def resume_sends(self) -> None: ...


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class ConsumeLoop:
    """One member's consume loop. ``run`` returns when ``stop`` is set, after committing what finished."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        batches: Batches,
        sends: Sends,
        database_up: Callable[[], Awaitable[bool]],
        metrics: Metrics,
        policy: ConsumePolicy,
        batch_timeout_ms: int,  # these five come from Settings, which holds their defaults
        batch_max_records: int,
        rebalance_drain_s: float,
        watchdog_stall_s: float,
        commit_stall_s: float,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[asyncio.Event, float], Awaitable[None]] = wait_or_stop,
    ) -> None:
        self._consumer = consumer
        self._batches = batches
        self._sends = sends
        self._database_up = database_up
        self._metrics = metrics
        self._policy = policy
        self._timeout_ms = batch_timeout_ms
        self._max_records = batch_max_records
        self._drain_s = rebalance_drain_s
        self._clock = clock
        self._wait = wait
        self._batch_lock = asyncio.Lock()  # held while a batch is in flight
        self._fetches = StallWatch(watchdog_stall_s, clock())
        self._commits = CommitWatch(commit_stall_s)
        self._positions: dict[Partition, int] = {}  # next offset to consume
        self._committed: dict[Partition, int] = {}  # by us, or where reading began
        self.stalled = False  # no fetch for too long while records wait: liveness fails
        self._commit_stalled = 0

    async def run(self, stop: asyncio.Event) -> None:
        at = Attempts()
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
            self._fetched(batch)
            if not batch:
                continue
            async with self._batch_lock:
                at, pause = await self._process(batch, at, stop)
            if pause:
                await self._wait(stop, pause)

    async def _process(self, batch: Batch, at: Attempts, stop: asyncio.Event) -> tuple[Attempts, float]:
        records = [r for rs in batch.values() for r in rs]
        unfinished: dict[Partition, int] | None
        try:
            unfinished = await self._batches.process_batch(records)
        except Exception as exc:  # any failure: retry, and after enough find the poison
            at = self._policy.failed(at)
            unfinished = await self._after_failure(records, exc, at)
        if unfinished is None:
            # Nothing of this batch is committed: rewind and try it again after a pause.
            self._rewind(first_offsets(batch))
            return at, self._policy.retry_pause(at)
        offsets = next_offsets(batch, unfinished)
        if await self._commit(offsets):
            self._committed_to(offsets)
        # Held (no provider would take them): read again from the first held record.
        self._rewind({p: o for p, o in unfinished.items() if p in batch})
        return self._policy.processed(
            at, held=bool(unfinished), waiting_allowed=not stop.is_set() and not self._sends.draining
        )

    async def _after_failure(
        self, records: list[InboundRecord], exc: Exception, at: Attempts
    ) -> dict[Partition, int] | None:
        """A batch failed. None: retry it later. After ``poison_attempts`` failures with the database
        up, its records are processed one by one and those that still fail are dead-lettered."""
        detail = str(exc) if isinstance(exc, NotifierError) else ""  # others may quote the event
        log.error("batch_failed", error=type(exc).__name__, detail=detail, failures=at.failures)
        if not self._policy.search_poison(at) or not await self._database_up():
            return None
        try:
            return await self._batches.process_one_by_one(records, attempts=at.failures)
        except Exception as again:  # still failing: keep retrying the batch
            log.error("poison_search_failed", error=type(again).__name__)
            return None

    def _rewind(self, offsets: Mapping[Partition, int]) -> None:
        """Seek back to records to process again (partitions a rebalance took away are skipped)."""
        assigned = self._consumer.assignment()
        for partition, offset in offsets.items():
            if partition in assigned:
                self._consumer.seek(partition, offset)
                self._positions[partition] = offset

    async def _commit(self, offsets: Mapping[Partition, int]) -> bool:
        """Commit explicit offsets; False when the broker did not take them (logged, survived)."""
        try:
            await self._consumer.commit(offsets)
        except CommitRefused:
            # A rebalance took the partitions away; the new owner re-reads and the dedup absorbs it.
            log.warning("commit_failed_after_rebalance", partitions=len(offsets))
        except ConsumerUnavailable as exc:
            # The batch is durable in PostgreSQL: the next commit covers these offsets, and if this
            # instance stops first the records are read again and the dedup absorbs them.
            log.warning("commit_failed", error=str(exc), partitions=len(offsets))
        else:
            return True
        return False

    def _fetched(self, batch: Batch) -> None:
        now = self._clock()
        self._fetches.fetched(now)
        for partition, records in batch.items():  # the port leaves out partitions that brought nothing
            self._positions[partition] = records[-1].offset + 1
            if partition not in self._committed:  # its first read starts at its committed offset
                self._committed[partition] = records[0].offset
                self._commits.committed(partition, records[0].offset, now)

    def _committed_to(self, offsets: Mapping[Partition, int]) -> None:
        now = self._clock()
        for partition, offset in offsets.items():
            self._committed[partition] = offset
            self._commits.committed(partition, offset, now)

    async def drain(self) -> None:
        """Rebalance: start no new sends, let the batch in flight finish and commit, then go on."""
        self._sends.pause_sends()
        started = self._clock()
        try:
            await asyncio.wait_for(self._batch_lock.acquire(), self._drain_s)
        except TimeoutError:
            log.warning("rebalance_drain_timeout", waited_s=self._drain_s)
        else:
            self._batch_lock.release()
            log.info("rebalance_drained", seconds=round(self._clock() - started, 3))
        finally:
            self._sends.resume_sends()
            self._positions.clear()
            self._committed.clear()  # partitions may move: each is measured again from its next read

    async def watch(self, stop: asyncio.Event) -> None:
        """Every few seconds: notice a consumer that stopped fetching while records wait (liveness
        fails, the pod restarts) and partitions whose commits stopped (readiness fails)."""
        while not stop.is_set():
            await self._wait(stop, WATCHDOG_EVERY_S)
            self.check_fetches()
            commits = self.commit_progress()
            if commits.stalled and not self._commit_stalled:
                log.error(
                    "partition_commits_stalled",
                    partitions=commits.stalled,
                    seconds_since_commit=round(commits.longest_s),
                )
            elif self._commit_stalled and not commits.stalled:
                log.info("partition_commits_resumed")
            self._commit_stalled = commits.stalled

    def check_fetches(self) -> bool:
        """The fetch watchdog, once: whether this member is stalled."""
        waiting = self.lag()
        now = self._clock()
        stalled = self._fetches.stalled(now, waiting)
        if stalled and not self.stalled:
            log.error("consumer_stalled", seconds_since_fetch=round(self._fetches.idle_s(now)), lag=waiting)
        self.stalled = stalled
        self._metrics.fetch_stalled.set(1 if stalled else 0)
        return stalled

    def lag(self) -> int:
        """Records waiting on this member's partitions past its positions (``notifier_consumer_lag``)."""
        return lag({p: self._consumer.highwater(p) for p in self._consumer.assignment()}, self._positions)

    def commit_progress(self) -> CommitStall:
        """Per assigned partition, the records waiting past its committed offset, through the watch."""
        waiting: dict[Partition, int] = {}
        for partition in self._consumer.assignment():
            high, committed = self._consumer.highwater(partition), self._committed.get(partition)
            if high is not None and committed is not None:
                waiting[partition] = max(0, high - committed)
        progress = self._commits.check(self._clock(), waiting)
        self._metrics.commit_stalled_partitions.set(progress.stalled)
        self._metrics.commit_stall_seconds.set(progress.longest_s)
        return progress

    def assignment(self) -> set[Partition]:
        """The partitions this member holds right now."""
        return self._consumer.assignment()
