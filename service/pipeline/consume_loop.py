"""The consume loop: fetch a batch, have the pipeline process it, commit what finished, rewind
and wait by ``ConsumePolicy``; drain on a rebalance; watch fetches and commits for liveness
and readiness. It sees Kafka only through the ``Consumer`` port."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(eq=False)
class Flight:
    """A batch being processed: its records' keys (busy until it finishes) and its task, whose
    result is the first unfinished offset of each partition that has one."""

    batch: Batch
    keys: frozenset[tuple[str, int, bytes | None]]
    task: asyncio.Task[dict[Partition, int]]

    def troubled(self) -> bool:
        """Finished, and it failed or left records unfinished (held)."""
        if not self.task.done():
            return False
        return self.task.cancelled() or self.task.exception() is not None or bool(self.task.result())


def _key(record: InboundRecord) -> tuple[str, int, bytes | None]:
    """Records with one key (the TMS keys by order id) are processed in order: one batch at a time."""
    return (record.topic, record.partition, record.key)


class ConsumeLoop:
    """One member's consume loop. ``run`` returns when ``stop`` is set, after committing what finished.

    Up to ``batches_in_flight`` batches are processed at once: the next batch is read and begun
    while earlier ones still send. A batch's records whose key is in an unfinished earlier batch
    wait for it (so the events of one order are decided in order); the others begin at once.
    Offsets are committed in batch order, each batch only once every earlier one finished
    (gap-aware: never past an unfinished record). When a batch fails or holds records, the loop
    lets the later batches finish, handles that batch as alone, and reads every later record again
    (the dedup absorbs what was already decided). After a failure or a hold it processes one batch
    at a time until a batch goes through cleanly."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        batches: Batches,
        sends: Sends,
        database_up: Callable[[], Awaitable[bool]],
        metrics: Metrics,
        policy: ConsumePolicy,
        batch_timeout_ms: int,  # these six come from Settings, which holds their defaults
        batch_max_records: int,
        rebalance_drain_s: float,
        watchdog_stall_s: float,
        commit_stall_s: float,
        batches_in_flight: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[asyncio.Event, float], Awaitable[None]] = wait_or_stop,
    ) -> None:
        if batches_in_flight < 1:
            raise ValueError("batches_in_flight must be >= 1")
        self._consumer = consumer
        self._batches = batches
        self._sends = sends
        self._database_up = database_up
        self._metrics = metrics
        self._policy = policy
        self._timeout_ms = batch_timeout_ms
        self._max_records = batch_max_records
        self._depth = batches_in_flight
        self._drain_s = rebalance_drain_s
        self._clock = clock
        self._wait = wait
        self._flights: deque[Flight] = deque()  # in the order they were read
        self._settling = asyncio.Lock()  # one settles finished batches at a time: the loop or a drain
        self._at = Attempts()
        self._fetches = StallWatch(watchdog_stall_s, clock())
        self._commits = CommitWatch(commit_stall_s)
        self._positions: dict[Partition, int] = {}  # next offset to consume
        self._committed: dict[Partition, int] = {}  # by us, or where reading began
        self.stalled = False  # no fetch for too long while records wait: liveness fails
        self._commit_stalled = 0

    async def run(self, stop: asyncio.Event) -> None:
        self._at = Attempts()
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self._timeout_ms, max_records=self._max_records
                )
                self._fetched(batch)
                # What finished meanwhile; after an earlier batch's trouble this one is read again.
                pause = await self._settle(stop, wait_until=None, unread=batch)
                if batch and pause is None:
                    self._begin(batch)
                # Read on while fewer than the allowed batches are in flight (one at a time after trouble).
                room = self._depth if self._at == Attempts() else 1
                more = await self._settle(stop, wait_until=room - 1)
                pause = more if pause is None else pause
                if pause:
                    await self._wait(stop, pause)
        finally:
            await self._settle(stop, wait_until=0)

    def _begin(self, batch: Batch) -> None:
        records = [r for rs in batch.values() for r in rs]
        # Busy: keys of a batch still running, or in trouble (its unfinished records come first).
        earlier = [f for f in self._flights if not f.task.done() or f.troubled()]
        busy = frozenset().union(*(f.keys for f in earlier))
        task = asyncio.create_task(self._fly(records, earlier, busy))
        self._flights.append(Flight(batch, frozenset(map(_key, records)), task))

    async def _fly(
        self,
        records: list[InboundRecord],
        earlier: list[Flight],
        busy: frozenset[tuple[str, int, bytes | None]],
    ) -> dict[Partition, int]:
        """Process a batch: the records of keys no earlier batch is busy with at once, the others
        once the earlier batches finished (not at all if one of them is in trouble: all of this
        batch is read again after it)."""
        now = [r for r in records if _key(r) not in busy]
        later = [r for r in records if _key(r) in busy]
        first = asyncio.ensure_future(self._batches.process_batch(now)) if now else None
        unfinished: dict[Partition, int] = {}
        try:
            if later:
                await asyncio.wait([f.task for f in earlier])
                if any(f.troubled() for f in earlier):  # not begun: read again from its first record
                    unfinished = {(r.topic, r.partition): r.offset for r in reversed(later)}
                else:
                    unfinished = await self._batches.process_batch(later)
        finally:
            done = await first if first is not None else {}  # never leave the first part running
        return {p: min(o, unfinished.get(p, o)) for p, o in (*unfinished.items(), *done.items())}

    async def _settle(
        self, stop: asyncio.Event, *, wait_until: int | None, unread: Batch | None = None
    ) -> float | None:
        """Commit the batches that finished, in order, waiting for them until at most ``wait_until``
        are in flight (None: no waiting). None when nothing was in trouble; else the pause to take:
        the partitions were rewound, so every later record (``unread``'s too) is read again."""
        async with self._settling:
            committable: dict[Partition, int] = {}
            while self._flights:
                head = self._flights[0]
                if not head.task.done():
                    if wait_until is None or len(self._flights) <= wait_until:
                        break
                    await asyncio.wait([head.task])
                if head.troubled():
                    await self._commit_prefix(committable)
                    return await self._troubled(stop, unread or {})
                self._flights.popleft()
                committable.update(next_offsets(head.batch))
                self._at, _ = self._policy.processed(self._at, held=False, waiting_allowed=True)
            await self._commit_prefix(committable)
            return None

    async def _commit_prefix(self, offsets: dict[Partition, int]) -> None:
        if offsets and await self._commit(offsets):
            self._committed_to(offsets)

    async def _troubled(self, stop: asyncio.Event, unread: Batch) -> float:
        """The first batch in flight failed or held records: let the later ones finish, handle it
        alone (retry, poison search, commit before the held records), and rewind every partition
        to the first record not yet committed."""
        head = self._flights.popleft()
        rest = list(self._flights)
        self._flights.clear()
        if rest:
            await asyncio.wait([f.task for f in rest])
        try:
            outcome: dict[Partition, int] | Exception = head.task.result()
        except Exception as exc:  # any failure: retry, and after enough find the poison
            outcome = exc
        pause, rewind = await self._conclude(head.batch, outcome, stop)
        for later in [*(f.batch for f in rest), unread]:
            for partition, offset in first_offsets(later).items():
                rewind[partition] = min(rewind.get(partition, offset), offset)
        self._rewind(rewind)
        return pause

    async def _conclude(
        self, batch: Batch, outcome: dict[Partition, int] | Exception, stop: asyncio.Event
    ) -> tuple[float, dict[Partition, int]]:
        """A batch's result, handled as if it were alone: the pause, and where to read again."""
        records = [r for rs in batch.values() for r in rs]
        unfinished: dict[Partition, int] | None
        if isinstance(outcome, Exception):
            self._at = self._policy.failed(self._at)
            unfinished = await self._after_failure(records, outcome, self._at)
        else:
            unfinished = outcome
        if unfinished is None:
            # Nothing of this batch is committed: rewind and try it again after a pause.
            return self._policy.retry_pause(self._at), first_offsets(batch)
        offsets = next_offsets(batch, unfinished)
        await self._commit_prefix(offsets)
        # Held (no provider would take them): read again from the first held record.
        self._at, pause = self._policy.processed(
            self._at, held=bool(unfinished), waiting_allowed=not stop.is_set() and not self._sends.draining
        )
        return pause, {p: o for p, o in unfinished.items() if p in batch}

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
        """Rebalance: start no new sends, let the batches in flight finish and commit, then go on."""
        self._sends.pause_sends()
        started = self._clock()
        try:
            await asyncio.wait_for(self._settle(asyncio.Event(), wait_until=0), self._drain_s)
        except TimeoutError:
            log.warning("rebalance_drain_timeout", waited_s=self._drain_s)
        else:
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
