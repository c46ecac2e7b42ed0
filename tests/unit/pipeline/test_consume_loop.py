"""The consume loop against the fake consumer: commit after success, rewind and back off after a
failure, the poison search, held records, the rebalance drain, commit errors, and the watches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from service.domain.consume_policy import ConsumePolicy
from service.domain.errors import CommitRefused, ConsumerUnavailable, StoreUnavailable
from service.domain.model import InboundRecord, Partition
from service.domain.watchdog import CommitStall
from service.metrics import Metrics
from service.pipeline.consume_loop import WATCHDOG_EVERY_S, ConsumeLoop, wait_or_stop
from service.testing import FakeClock, FakeConsumer

A, B = ("t", 0), ("t", 1)

#: The loop's settings unless a test says otherwise (the Settings defaults).
TUNING: dict[str, Any] = {
    "batch_timeout_ms": 200,
    "batch_max_records": 500,
    "rebalance_drain_s": 20.0,
    "watchdog_stall_s": 120.0,
    "commit_stall_s": 300.0,
}

#: What the scripted pipeline does with one batch: raise this, or return these unfinished offsets.
Answer = Exception | dict[Partition, int]


@dataclass
class ScriptedBatches:
    """The pipeline's two calls, answering from a script (then all finished); ``stop`` is set
    after ``stop_after`` batches."""

    answers: list[Answer] = field(default_factory=list)
    one_by_one: list[Answer] = field(default_factory=list)
    stop: asyncio.Event | None = None
    stop_after: int | None = None
    gate: asyncio.Event | None = None  # when set, each batch waits for it
    gates: dict[int, asyncio.Event] = field(default_factory=dict)  # the n-th call waits for its own
    started: asyncio.Event = field(default_factory=asyncio.Event)
    batches: list[list[tuple[Partition, int]]] = field(default_factory=list)
    searches: list[tuple[list[tuple[Partition, int]], int]] = field(default_factory=list)

    async def process_batch(self, records: Sequence[InboundRecord]) -> dict[Partition, int]:
        self.batches.append(_offsets(records))
        call = len(self.batches) - 1
        answer = self.answers.pop(0) if self.answers else {}  # in the order the calls began
        self.started.set()
        if self.stop is not None and self.stop_after is not None and len(self.batches) >= self.stop_after:
            self.stop.set()
        if self.gate is not None:
            await self.gate.wait()
        if call in self.gates:
            await self.gates[call].wait()
        return _answer(answer)

    async def process_one_by_one(
        self, records: Sequence[InboundRecord], *, attempts: int
    ) -> dict[Partition, int]:
        self.searches.append((_offsets(records), attempts))
        return _answer(self.one_by_one.pop(0) if self.one_by_one else {})


def _offsets(records: Sequence[InboundRecord]) -> list[tuple[Partition, int]]:
    return [((r.topic, r.partition), r.offset) for r in records]


def _answer(answer: Answer) -> dict[Partition, int]:
    if isinstance(answer, Exception):
        raise answer
    return answer


@dataclass
class FakeSends:
    draining: bool = False
    pauses: int = 0
    resumes: int = 0

    def pause_sends(self) -> None:
        self.pauses += 1
        self.draining = True

    def resume_sends(self) -> None:
        self.resumes += 1
        self.draining = False


@dataclass
class Rig:
    consumer: FakeConsumer
    batches: ScriptedBatches
    sends: FakeSends
    clock: FakeClock
    metrics: Metrics
    loop: ConsumeLoop
    stop: asyncio.Event
    database: dict[str, Any]
    waits: list[float]  # every pause the loop asked for (those cut short by the stop too)

    async def run(self) -> None:
        self.consumer.when_idle = self.stop.set  # everything read: stop
        await asyncio.wait_for(self.loop.run(self.stop), 5)

    async def run_again(self, *answers: Answer) -> None:
        """Run the loop once more (as after a restart of the loop alone), with these answers."""
        self.stop = self.batches.stop = asyncio.Event()
        self.batches.answers, self.batches.stop_after = list(answers), None
        await self.run()

    def gauge(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(name)


def _rig(
    *answers: Answer,
    partitions: Sequence[Partition] = (A, B),
    records: dict[Partition, int] | None = None,
    poison_attempts: int = 3,
    database_up: bool = True,
    consumer: FakeConsumer | None = None,
    **options: Any,
) -> Rig:
    consumer = consumer if consumer is not None else FakeConsumer(partitions)
    for partition, n in (records if records is not None else {A: 3, B: 1}).items():
        for i in range(n):
            consumer.append(partition, f"{partition}-{i}".encode())
    stop = asyncio.Event()
    batches = ScriptedBatches(list(answers), stop=stop)
    sends, clock, metrics = FakeSends(), FakeClock(), Metrics()
    database: dict[str, Any] = {"up": database_up, "pings": 0}

    async def up() -> bool:
        database["pings"] += 1
        return bool(database["up"])

    waits: list[float] = []

    async def wait(stop: asyncio.Event, seconds: float) -> None:
        waits.append(seconds)
        if not stop.is_set():
            await clock.sleep(seconds)

    loop = ConsumeLoop(
        consumer=consumer,
        batches=batches,
        sends=sends,
        database_up=up,
        metrics=metrics,
        policy=ConsumePolicy(poison_attempts=poison_attempts),
        clock=clock,
        wait=wait,
        **{**TUNING, **options},
    )
    consumer.on_revoke = loop.drain
    return Rig(consumer, batches, sends, clock, metrics, loop, stop, database, waits)


async def test_a_processed_batch_is_committed_one_past_each_partitions_last_record() -> None:
    rig = _rig()
    await rig.run()
    assert rig.batches.batches == [[(A, 0), (A, 1), (A, 2), (B, 0)]]
    assert rig.consumer.commits == [{A: 3, B: 1}]  # explicit offsets, once per batch
    assert rig.consumer.seeks == []
    assert rig.clock.slept == []


async def test_a_failed_batch_is_read_again_from_its_first_records_after_a_growing_pause() -> None:
    rig = _rig(StoreUnavailable("down"), RuntimeError("bug?"), poison_attempts=5)
    with capture_logs() as logs:
        await rig.run()
    assert rig.batches.batches == [[(A, 0), (A, 1), (A, 2), (B, 0)]] * 3
    assert rig.consumer.seeks == [(A, 0), (B, 0)] * 2
    assert rig.clock.slept == [0.5, 1]
    assert rig.consumer.commits == [{A: 3, B: 1}]  # only the success commits
    failed = [(e["error"], e["detail"], e["failures"]) for e in logs if e["event"] == "batch_failed"]
    assert failed == [("StoreUnavailable", "down", 1), ("RuntimeError", "", 2)]  # others may quote the event
    assert rig.database["pings"] == 0
    assert rig.batches.searches == []


async def test_after_poison_attempts_failures_with_the_database_up_the_batch_goes_one_by_one() -> None:
    rig = _rig(*[ValueError("poison")] * 3)
    await rig.run()
    assert len(rig.batches.batches) == 3
    assert rig.clock.slept == [0.5, 1]  # the third failure searches at once
    assert rig.database["pings"] == 1  # asked only once the poison search is due
    assert rig.batches.searches == [([(A, 0), (A, 1), (A, 2), (B, 0)], 3)]
    assert rig.consumer.commits == [{A: 3, B: 1}]


async def test_the_poison_search_counts_from_the_setting() -> None:
    rig = _rig(ValueError("poison"), poison_attempts=1)
    await rig.run()
    assert rig.clock.slept == []
    assert [a for _, a in rig.batches.searches] == [1]


async def test_with_the_database_down_a_failing_batch_is_only_retried_never_searched() -> None:
    rig = _rig(*[StoreUnavailable("down")] * 6, database_up=False)
    rig.batches.stop_after = 6
    await rig.run()
    assert rig.clock.slept == [0.5, 1, 2, 5, 10]  # the sixth pause is cut short by the stop
    assert rig.database["pings"] == 4  # failures 3 to 6
    assert rig.batches.searches == []
    assert rig.consumer.commits == []


async def test_a_poison_search_that_fails_too_keeps_retrying_the_batch() -> None:
    rig = _rig(*[ValueError("x")] * 4)
    rig.batches.one_by_one = [StoreUnavailable("gone meanwhile")]
    with capture_logs() as logs:
        await rig.run()
    assert [a for _, a in rig.batches.searches] == [3, 4]
    assert rig.clock.slept == [0.5, 1, 2]
    assert [e["error"] for e in logs if e["event"] == "poison_search_failed"] == ["StoreUnavailable"]
    assert rig.consumer.commits == [{A: 3, B: 1}]


async def test_held_records_are_committed_up_to_rewound_to_and_waited_for_with_the_hold_backoff() -> None:
    rig = _rig({A: 1}, {A: 1}, {A: 2}, {})
    await rig.run()
    assert rig.batches.batches == [
        [(A, 0), (A, 1), (A, 2), (B, 0)],
        [(A, 1), (A, 2)],
        [(A, 1), (A, 2)],
        [(A, 2)],
    ]
    assert rig.consumer.commits == [{A: 1, B: 1}, {A: 1}, {A: 2}, {A: 3}]
    assert rig.consumer.seeks == [(A, 1), (A, 1), (A, 2)]
    assert rig.clock.slept == [1, 2, 5]


async def test_the_hold_backoff_starts_again_after_a_batch_that_held_nothing() -> None:
    rig = _rig({A: 1}, {}, {A: 3}, {}, records={A: 2})
    await _run_feeding(rig, {A: 2})  # two more records once the first two are done
    assert rig.clock.slept == [1, 1]


async def _run_feeding(rig: Rig, more: dict[Partition, int]) -> None:
    fed = False

    def idle() -> None:
        nonlocal fed
        if fed:
            rig.stop.set()
            return
        fed = True
        for partition, n in more.items():
            for _ in range(n):
                rig.consumer.append(partition, b"more")

    rig.consumer.when_idle = idle
    await asyncio.wait_for(rig.loop.run(rig.stop), 5)


async def test_held_records_are_not_waited_for_while_draining() -> None:
    rig = _rig({A: 1}, {})
    rig.sends.draining = True  # SIGTERM: sends paused, held records read again at once
    await rig.run()
    assert rig.clock.slept == []
    assert rig.consumer.seeks == [(A, 1)]


async def test_held_records_are_not_waited_for_while_stopping() -> None:
    rig = _rig({A: 1})
    rig.batches.stop_after = 1  # SIGTERM during the batch
    await rig.run()
    assert rig.consumer.seeks == [(A, 1)]
    assert rig.waits == []


async def test_a_rebalance_drains_the_batch_in_flight_which_commits_before_the_partitions_move() -> None:
    rig = _rig()
    rig.batches.gate = asyncio.Event()
    rig.consumer.when_idle = rig.stop.set
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await asyncio.wait_for(rig.batches.started.wait(), 5)
    with capture_logs() as logs:
        revoking = asyncio.create_task(rig.consumer.revoke())
        await asyncio.sleep(0.01)
        assert rig.sends.pauses == 1
        assert rig.sends.draining
        assert not revoking.done()  # the partitions wait for the batch
        rig.clock.now += 1.23456  # the batch takes its time
        rig.batches.gate.set()
        await asyncio.wait_for(revoking, 5)
    assert rig.consumer.committed == {A: 3, B: 1}  # committed while still assigned
    assert rig.sends.resumes == 1
    assert not rig.sends.draining
    assert [(e["event"], e["seconds"]) for e in logs] == [("rebalance_drained", 1.235)]
    await asyncio.wait_for(running, 5)


async def test_a_drain_that_takes_too_long_gives_the_partitions_up_and_the_late_commit_is_survived() -> None:
    rig = _rig(rebalance_drain_s=0.01)
    rig.batches.gate = asyncio.Event()
    rig.consumer.when_idle = rig.stop.set
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await asyncio.wait_for(rig.batches.started.wait(), 5)
    with capture_logs() as logs:
        await asyncio.wait_for(rig.consumer.revoke(), 5)
        assert rig.sends.resumes == 1
        rig.batches.gate.set()
        await asyncio.wait_for(running, 5)
    assert [(e["event"], e.get("partitions")) for e in logs] == [
        ("rebalance_drain_timeout", None),
        ("commit_failed_after_rebalance", 2),  # the new owner reads them again; the dedup absorbs it
    ]
    assert logs[0]["waited_s"] == 0.01
    assert rig.consumer.committed == {}
    assert rig.consumer.seeks == []


async def test_a_batch_that_fails_after_its_partitions_moved_is_rewound_only_where_still_assigned() -> None:
    rig = _rig(StoreUnavailable("down"), rebalance_drain_s=0.01)
    rig.batches.gate = asyncio.Event()
    rig.consumer.when_idle = rig.stop.set
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await asyncio.wait_for(rig.batches.started.wait(), 5)
    await asyncio.wait_for(rig.consumer.revoke([A]), 5)  # the drain gives up: A moves mid-batch
    rig.batches.gate.set()
    await asyncio.wait_for(running, 5)
    assert rig.consumer.seeks[0] == (B, 0)  # not A: another member reads it now
    assert (A, 0) not in rig.consumer.seeks


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (CommitRefused("CommitFailedError"), ("commit_failed_after_rebalance", None, 2)),
        (ConsumerUnavailable("KafkaConnectionError"), ("commit_failed", "KafkaConnectionError", 2)),
    ],
)
async def test_a_commit_refused_is_logged_and_survived_and_the_batch_is_not_read_again(
    error: Exception, logged: tuple[str, str | None, int]
) -> None:
    rig = _rig()
    rig.consumer.commit_errors = [error]
    with capture_logs() as logs:
        await _run_feeding(rig, {A: 1})
    assert [(e["event"], e.get("error"), e["partitions"]) for e in logs] == [logged]
    assert rig.consumer.commits == [{A: 3, B: 1}, {A: 4}]  # the loop went on: the next commit covers it
    assert rig.consumer.seeks == []


async def test_a_bug_in_the_commit_is_not_swallowed() -> None:
    rig = _rig()
    rig.consumer.commit_errors = [TypeError("offsets")]
    with pytest.raises(TypeError):
        await rig.run()


async def test_commits_stuck_while_records_wait_make_the_partition_stalled_and_are_logged_once() -> None:
    rig = _rig(*[{A: 0}] * 6, records={A: 1}, partitions=(A,), commit_stall_s=40)
    rig.batches.stop_after = 6  # the record is held for ever: 1 + 2 + 5 + 10 + 30 s
    await rig.run()
    assert rig.clock.slept == [1, 2, 5, 10, 30]
    progress = rig.loop.commit_progress()
    assert (progress.stalled, progress.longest_s) == (1, 48)
    assert rig.gauge("notifier_commit_stalled_partitions") == 1
    assert rig.gauge("notifier_commit_stall_seconds") == 48
    logs = await _watch_once(rig)
    assert [(e["event"], e.get("partitions")) for e in logs] == [("partition_commits_stalled", 1)]
    assert logs[0]["seconds_since_commit"] == 48 + WATCHDOG_EVERY_S
    assert await _watch_once(rig) == []  # logged once, not at every check
    await rig.run_again({})  # the record goes out at last: its commit moves
    assert rig.consumer.committed == {A: 1}
    assert [e["event"] for e in await _watch_once(rig)] == ["partition_commits_resumed"]
    assert rig.gauge("notifier_commit_stalled_partitions") == 0


async def _watch_once(rig: Rig) -> list[dict[str, Any]]:
    stop = asyncio.Event()

    async def tick(stop: asyncio.Event, seconds: float) -> None:
        assert seconds == WATCHDOG_EVERY_S
        rig.clock.now += seconds
        stop.set()  # one check, then out

    wait, rig.loop._wait = rig.loop._wait, tick
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(rig.loop.watch(stop), 5)
    finally:
        rig.loop._wait = wait
    return logs


async def test_no_fetch_for_too_long_while_records_wait_fails_liveness_and_is_logged_once() -> None:
    rig = _rig(records={A: 2}, partitions=(A,), watchdog_stall_s=120)
    assert rig.loop.stalled is False
    await rig.run()
    for _ in range(5):
        rig.consumer.append(A, b"waiting")
    rig.clock.now += 100
    assert not rig.loop.check_fetches()  # a long batch, inside the limit
    assert rig.loop.lag() == 5
    rig.clock.now += 21
    with capture_logs() as logs:
        assert rig.loop.check_fetches()
    assert [(e["event"], e["lag"], e["seconds_since_fetch"]) for e in logs] == [("consumer_stalled", 5, 121)]
    with capture_logs() as logs:
        assert rig.loop.check_fetches()
    assert logs == []  # logged once, when it began
    assert rig.loop.stalled
    assert rig.gauge("notifier_fetch_stalled") == 1
    await rig.run_again()  # it fetches again
    assert not rig.loop.check_fetches()
    assert rig.gauge("notifier_fetch_stalled") == 0
    assert not rig.loop.stalled


async def test_a_quiet_topic_is_not_a_stall() -> None:
    rig = _rig(records={A: 1}, partitions=(A,), watchdog_stall_s=120)
    await rig.run()
    rig.clock.now += 10_000
    assert not rig.loop.check_fetches()
    assert rig.loop.lag() == 0


async def test_a_fetch_asks_for_the_configured_wait_and_number_of_records() -> None:
    rig = _rig(batch_timeout_ms=50, batch_max_records=2)
    asked: list[tuple[int, int]] = []
    fetch = rig.consumer.getmany

    async def getmany(*, timeout_ms: int, max_records: int) -> Any:
        asked.append((timeout_ms, max_records))
        return await fetch(timeout_ms=timeout_ms, max_records=max_records)

    rig.consumer.getmany = getmany  # type: ignore[method-assign]
    await rig.run()
    assert set(asked) == {(50, 2)}
    assert rig.batches.batches == [[(A, 0), (A, 1)], [(A, 2), (B, 0)]]


async def test_wait_or_stop_waits_the_seconds_or_until_the_stop() -> None:
    stop = asyncio.Event()
    started = time.monotonic()
    await asyncio.wait_for(wait_or_stop(stop, 0.05), 2)
    assert time.monotonic() - started >= 0.04
    asyncio.get_running_loop().call_later(0.01, stop.set)
    await asyncio.wait_for(wait_or_stop(stop, 60), 2)  # cut short by the stop
    await asyncio.wait_for(wait_or_stop(stop, 60), 2)  # already stopped: at once


async def test_a_partition_whose_batches_keep_failing_has_its_commits_stalled_from_its_first_read() -> None:
    rig = _rig(*[StoreUnavailable("down")] * 3, records={A: 1}, partitions=(A,), poison_attempts=5)
    rig.batches.stop_after = 3
    start = rig.clock.now
    await rig.run()
    assert rig.consumer.commits == []
    rig.clock.now = start + 301
    assert rig.loop.commit_progress() == CommitStall(1, 301)


async def test_a_commit_that_does_not_move_the_offset_does_not_restart_the_partitions_clock() -> None:
    rig = _rig(StoreUnavailable("down"), {A: 0}, records={A: 1}, partitions=(A,))
    rig.batches.stop_after = 2
    await rig.run()
    assert rig.consumer.commits == [{A: 0}]  # half a second after the first read
    assert rig.loop.commit_progress() == CommitStall(0, 0.5)  # measured from the first read


async def test_the_commit_clock_of_a_partition_runs_from_its_last_commit() -> None:
    rig = _rig({A: 1}, {}, records={A: 2}, partitions=(A,))
    await rig.run()
    assert rig.consumer.commits == [{A: 1}, {A: 2}]
    assert rig.clock.slept == [1]  # the second commit comes a second after the first
    for _ in range(3):
        rig.consumer.append(A, b"late")
    rig.clock.now += 50
    assert rig.loop.commit_progress() == CommitStall(0, 50)


async def test_a_commit_the_broker_did_not_take_leaves_the_partition_waiting_from_its_last_commit() -> None:
    rig = _rig(records={A: 2}, partitions=(A,))
    rig.consumer.commit_errors = [ConsumerUnavailable("KafkaConnectionError")]
    start = rig.clock.now
    await rig.run()
    assert rig.consumer.committed == {}
    rig.clock.now = start + 301
    assert rig.loop.commit_progress() == CommitStall(1, 301)


async def test_partitions_with_nothing_waiting_are_not_stalled_however_long_they_are_quiet() -> None:
    rig = _rig(records={A: 3})  # B is assigned but brings nothing: no committed offset known
    await rig.run()
    rig.clock.now += 10_000
    assert rig.loop.commit_progress() == CommitStall(0, 0)
    assert rig.gauge("notifier_commit_stalled_partitions") == 0


# Batches in flight at once (NOTIFIER_BATCHES_IN_FLIGHT).


class YieldingConsumer(FakeConsumer):
    """A fetch that lets other tasks run before it answers, as a real one does."""

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Any:
        for _ in range(5):
            await asyncio.sleep(0)
        return await super().getmany(timeout_ms=timeout_ms, max_records=max_records)


def _keyed(rig: Rig, partition: Partition, *keys: str) -> None:
    for k in keys:
        rig.consumer.append(partition, k.encode(), k.encode())


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def _flying(*answers: Answer, batches_in_flight: int = 2, **options: Any) -> Rig:
    """Two batches in flight, two records a batch, the records added by the test with keys."""
    rig = _rig(
        *answers,
        records={},
        batches_in_flight=batches_in_flight,
        batch_max_records=2,
        consumer=YieldingConsumer((A, B)),
        **options,
    )
    rig.consumer.when_idle = rig.stop.set
    return rig


async def test_the_next_batch_begins_while_one_is_in_flight_and_commits_only_after_it() -> None:
    rig = _flying()
    _keyed(rig, A, "k1", "k2", "k3", "k4")
    rig.batches.gates[0] = asyncio.Event()
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 2)  # the second began, the first still sends
    await asyncio.sleep(0.01)
    assert rig.consumer.commits == []  # the second finished, but the first did not: nothing committed
    rig.batches.gates[0].set()
    await asyncio.wait_for(running, 5)
    assert rig.batches.batches == [[(A, 0), (A, 1)], [(A, 2), (A, 3)]]
    assert rig.consumer.commits == [{A: 4}]
    assert rig.consumer.seeks == []


async def test_records_of_a_key_in_an_earlier_batch_in_flight_wait_for_it_and_the_others_do_not() -> None:
    rig = _flying()
    _keyed(rig, A, "k1", "k2", "k1", "k3")  # the order's next event (k1) is in the second batch
    rig.batches.gates[0] = asyncio.Event()
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 2)
    await asyncio.sleep(0.01)
    assert rig.batches.batches == [[(A, 0), (A, 1)], [(A, 3)]]  # k1's second event waits
    rig.batches.gates[0].set()
    await asyncio.wait_for(running, 5)
    assert rig.batches.batches[2] == [(A, 2)]  # after the first batch finished
    assert rig.consumer.committed == {A: 4}


async def test_only_a_batch_of_the_same_partition_and_key_waits() -> None:
    rig = _flying()
    _keyed(rig, A, "k1", "k2")
    _keyed(rig, B, "k1", "k9")  # another partition: another order, whatever its key says
    rig.batches.gates[0] = asyncio.Event()
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 2)
    assert rig.batches.batches[1] == [(B, 0), (B, 1)]
    rig.batches.gates[0].set()
    await asyncio.wait_for(running, 5)
    assert rig.consumer.committed == {A: 2, B: 2}


async def test_a_held_batch_lets_the_later_finish_and_commits_up_to_its_held_record() -> None:
    rig = _flying({A: 1})  # the first batch holds its second record (k2)
    _keyed(rig, A, "k1", "k2", "k3", "k4")
    rig.batches.gates[0] = asyncio.Event()
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 2)
    rig.batches.gates[0].set()
    await asyncio.wait_for(running, 5)
    assert rig.consumer.commits[0] == {A: 1}  # not past the held record, whatever came after it
    assert rig.consumer.seeks == [(A, 1)]  # the later batch is read again with it
    assert rig.waits == [1]  # the hold back-off
    # After the hold, one batch at a time (the third ends before the fourth is read), then all done.
    assert rig.batches.batches[2:] == [[(A, 1), (A, 2)], [(A, 3)]]
    assert rig.consumer.committed == {A: 4}


async def test_a_failed_batch_lets_the_later_one_finish_and_everything_after_it_is_read_again() -> None:
    rig = _flying(StoreUnavailable("down"))
    _keyed(rig, A, "k1", "k2", "k1", "k3")
    rig.batches.gates[0] = asyncio.Event()
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 2)
    rig.batches.gates[0].set()
    await asyncio.wait_for(running, 5)
    # k1's second event never ran before its first was decided; k3 ran and is read again.
    assert rig.batches.batches == [
        [(A, 0), (A, 1)],
        [(A, 3)],
        [(A, 0), (A, 1)],  # the retry, alone: nothing else is in flight until it went through
        [(A, 2), (A, 3)],
    ]
    assert rig.consumer.seeks == [(A, 0)]
    assert rig.waits == [0.5]
    assert rig.consumer.commits == [{A: 2}, {A: 4}]


async def test_a_batch_read_after_an_earlier_one_failed_is_not_begun_but_read_again() -> None:
    rig = _rig(
        StoreUnavailable("down"),
        records={},
        batches_in_flight=2,
        batch_max_records=2,
        consumer=YieldingConsumer((A, B)),
    )
    rig.consumer.when_idle = rig.stop.set
    _keyed(rig, A, "k1", "k2")
    _keyed(rig, B, "k5", "k6")
    await asyncio.wait_for(rig.loop.run(rig.stop), 5)
    assert rig.batches.batches == [[(A, 0), (A, 1)], [(A, 0), (A, 1)], [(B, 0), (B, 1)]]
    assert rig.consumer.seeks == [(A, 0), (B, 0)]  # B's first batch was read, then given back
    assert rig.consumer.committed == {A: 2, B: 2}


async def test_a_rebalance_drains_every_batch_in_flight_and_commits_them() -> None:
    rig = _flying()
    _keyed(rig, A, "k1", "k2", "k3", "k4")
    rig.batches.gates = {0: asyncio.Event(), 1: asyncio.Event()}
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 2)
    revoking = asyncio.create_task(rig.consumer.revoke())
    await asyncio.sleep(0.01)
    rig.batches.gates[0].set()
    await asyncio.sleep(0.01)
    assert not revoking.done()  # the second batch still sends
    rig.batches.gates[1].set()
    await asyncio.wait_for(revoking, 5)
    assert rig.consumer.committed == {A: 4}  # both, while still assigned
    assert rig.sends.resumes == 1
    await asyncio.wait_for(running, 5)


async def test_batches_in_flight_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="batches_in_flight"):
        _rig(batches_in_flight=0)


async def test_a_key_held_in_an_earlier_finished_batch_is_busy_until_that_batch_is_handled() -> None:
    rig = _flying(*[{}, {A: 2}], batches_in_flight=3)  # the second batch holds k3
    _keyed(rig, A, "k1", "k2", "k3", "k4", "k3", "k5")
    rig.batches.gates[0] = asyncio.Event()
    running = asyncio.create_task(rig.loop.run(rig.stop))
    await _until(lambda: len(rig.batches.batches) == 3)
    await asyncio.sleep(0.01)
    assert rig.batches.batches[2] == [(A, 5)]  # k5 at once; k3's next event not before k3's held one
    rig.batches.gates[0].set()
    await asyncio.wait_for(running, 5)
    assert (A, 4) not in [r for b in rig.batches.batches[:4] for r in b]
    assert rig.consumer.seeks == [(A, 2)]
    assert rig.consumer.committed == {A: 6}
