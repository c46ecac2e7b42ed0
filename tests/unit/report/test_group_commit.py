"""Group commit: concurrent records written together, each caller answered with its own result."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from service.domain.errors import StoreUnavailable
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import Outcome
from service.report.group_commit import GroupCommit, Pending
from tests.builders import update


def outcome(order: str) -> Outcome:
    m = Milestone.ARRIVED_HK_WAREHOUSE
    return Outcome(
        notification_id(order, m), update(order), m, State.SENT, "sms", datetime(2026, 12, 1, tzinfo=UTC)
    )


class Writer:
    """Writes groups, each held until ``gate`` opens; records what each group held."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.groups: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = fail or set()

    async def __call__(self, group: list[Pending[list[str]]]) -> list[list[str]]:
        orders = [o.update.order_id for p in group for o in p.outcomes]
        self.groups.append(orders)
        await self.gate.wait()
        if self.fail & set(orders):
            raise StoreUnavailable("database: gone")
        return [[o.update.order_id.lower() for o in p.outcomes] for p in group]


async def test_a_lone_record_is_written_at_once_and_answered() -> None:
    w = Writer()
    gc: GroupCommit[list[str]] = GroupCommit(w)
    assert await gc.record([outcome("A")]) == ["a"]
    assert w.groups == [["A"]]


async def test_records_asked_for_during_a_write_are_written_together_next() -> None:
    w = Writer()
    w.gate.clear()
    gc: GroupCommit[list[str]] = GroupCommit(w)
    first = asyncio.create_task(gc.record([outcome("A")]))
    await asyncio.sleep(0)  # A's write has begun and waits at the gate
    await asyncio.sleep(0)
    later = [asyncio.create_task(gc.record([outcome(o), outcome(o + "2")])) for o in "BCD"]
    await asyncio.sleep(0)
    w.gate.set()
    assert await first == ["a"]
    assert [await t for t in later] == [["b", "b2"], ["c", "c2"], ["d", "d2"]]  # each gets its own
    assert w.groups == [["A"], ["B", "B2", "C", "C2", "D", "D2"]]
    assert gc.groups == 2


async def test_a_group_is_at_most_max_outcomes_but_a_bigger_record_is_written_alone() -> None:
    w = Writer()
    w.gate.clear()
    gc: GroupCommit[list[str]] = GroupCommit(w, max_outcomes=3)
    tasks = [asyncio.create_task(gc.record([outcome(o)])) for o in "ABCD"]
    tasks.append(asyncio.create_task(gc.record([outcome(o) for o in "EFGHI"])))
    await asyncio.sleep(0)
    w.gate.set()
    await asyncio.gather(*tasks)
    assert w.groups == [["A", "B", "C"], ["D"], ["E", "F", "G", "H", "I"]]


async def test_a_failed_write_fails_every_caller_of_its_group_and_the_next_group_is_still_written() -> None:
    w = Writer(fail={"B"})
    w.gate.clear()
    gc: GroupCommit[list[str]] = GroupCommit(w)
    a = asyncio.create_task(gc.record([outcome("A")]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    b, c = (asyncio.create_task(gc.record([outcome(o)])) for o in "BC")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    w.gate.set()
    assert await a == ["a"]
    for t in (b, c):  # C shared B's transaction: it is not durable either
        with pytest.raises(StoreUnavailable):
            await t
    assert await gc.record([outcome("D")]) == ["d"]  # the writer goes on
    assert w.groups == [["A"], ["B", "C"], ["D"]]


async def test_a_caller_cancelled_while_waiting_does_not_cancel_the_write_it_shares() -> None:
    w = Writer()
    w.gate.clear()
    gc: GroupCommit[list[str]] = GroupCommit(w)
    a, b = (asyncio.create_task(gc.record([outcome(o)])) for o in "AB")
    await asyncio.sleep(0)
    a.cancel()
    await asyncio.sleep(0)
    w.gate.set()
    assert await b == ["b"]
    assert w.groups == [["A", "B"]]  # A was written all the same: its send is durable
    assert a.cancelled()
