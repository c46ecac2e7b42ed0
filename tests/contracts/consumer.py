"""The ``Consumer`` port's contract: what the consume loop (service/pipeline/consume_loop.py) relies
on from a consumer-group member. Fetches bring each partition's records in offset order; a member
reads a partition from its group's committed offset, and nothing is committed unless asked; a
seek back reads again (a held or failed batch); a rebalance awaits ``on_revoke`` while the member
still holds its partitions (the drain commits there), then deals the partitions out, tells each
member its share, and a commit of a partition given away is ``CommitRefused``. Run on
``FakeConsumer`` (tests/unit/test_consumer_contract.py) and on ``KafkaConsumer`` with a real broker
(tests/integration/test_consumer_contract.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import pytest

from service.domain.errors import CommitRefused, ConsumerError
from service.domain.model import InboundRecord, Partition
from service.domain.ports import Consumer

#: What a reader checks of a record: (partition, offset, key, value).
Seen = tuple[int, int, bytes | None, bytes | None]


class Group(Protocol):
    """One consumer group subscribed to ``topic``, which has two partitions, 0 and 1, and nothing
    committed. Members still open when the test ends are closed for it."""

    topic: str

    async def produce(self, partition: int, values: Sequence[bytes], key: bytes | None = None) -> None:
        """Append ``values`` to the partition (acknowledged before this returns)."""

    async def join(
        self,
        *,
        on_revoke: Callable[[], Awaitable[None]] | None = None,
        on_share: Callable[[float], None] | None = None,
    ) -> Consumer:
        """A new member of the group, with the rebalance callbacks ``build_consumer`` takes."""
        ...

    async def leave(self, member: Consumer) -> None:
        """Close the member: it leaves the group."""


def seen(records: Sequence[InboundRecord]) -> list[Seen]:
    return [(r.partition, r.offset, r.key, r.value) for r in records]


async def read(
    members: Sequence[Consumer], n: int, *, max_records: int = 500, timeout_s: float = 30.0
) -> list[InboundRecord]:
    """Fetch from every member in turn until ``n`` records came (in the order they came)."""
    got: list[InboundRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"{len(got)} of {n} records came in {timeout_s}s"
        for member in members:
            batch = await member.getmany(timeout_ms=100, max_records=max_records)
            assert sum(len(rs) for rs in batch.values()) <= max_records
            for partition, records in batch.items():
                assert records, "a partition that brought nothing is left out"
                assert {(r.topic, r.partition) for r in records} == {partition}
                got.extend(records)
    return got


async def quiet(members: Sequence[Consumer], fetches: int = 3) -> None:
    """Nothing more comes: a few fetches are all empty."""
    for _ in range(fetches):
        for member in members:
            assert await member.getmany(timeout_ms=200, max_records=500) == {}


async def settled(
    members: Sequence[Consumer],
    partitions: set[Partition],
    told: Callable[[], bool] = lambda: True,
    timeout_s: float = 60.0,
) -> list[InboundRecord]:
    """Fetch from every member until each holds some partitions, together they hold
    ``partitions``, each once, and ``told`` (a rebalance done, its callbacks run); what came
    meanwhile, in the order it came."""
    got: list[InboundRecord] = []
    deadline = time.monotonic() + timeout_s
    while True:
        held = [m.assignment() for m in members]
        split = sum(len(h) for h in held) == len(partitions) and set().union(*held) == partitions
        if all(held) and split and told():
            return got
        assert time.monotonic() < deadline, f"the group did not settle: {held}"
        for member in members:
            for records in (await member.getmany(timeout_ms=100, max_records=500)).values():
                got.extend(records)


class ConsumerContract:
    """Subclasses give ``group``."""

    @pytest.fixture
    def group(self) -> Group:
        raise NotImplementedError

    def parts(self, group: Group) -> tuple[Partition, Partition]:
        return (group.topic, 0), (group.topic, 1)

    async def test_a_fetch_brings_each_partition_s_records_in_offset_order_with_their_keys(
        self, group: Group
    ) -> None:
        await group.produce(0, [b"a0", b"a1", b"a2"], key=b"ORD-A")
        await group.produce(1, [b"b0", b"b1"], key=b"ORD-B")
        member = await group.join()
        records = await read([member], 5)
        by_partition = {p: [s for s in seen(records) if s[0] == p] for p in (0, 1)}
        assert by_partition == {
            0: [(0, 0, b"ORD-A", b"a0"), (0, 1, b"ORD-A", b"a1"), (0, 2, b"ORD-A", b"a2")],
            1: [(1, 0, b"ORD-B", b"b0"), (1, 1, b"ORD-B", b"b1")],
        }
        assert {r.topic for r in records} == {group.topic}
        assert all(r.timestamp_ms > 0 for r in records)
        assert member.assignment() == set(self.parts(group))  # the only member holds every partition
        await quiet([member])

    async def test_a_fetch_brings_at_most_max_records_and_the_next_goes_on(self, group: Group) -> None:
        await group.produce(0, [b"%d" % i for i in range(5)])
        member = await group.join()
        records = await read([member], 5, max_records=2)
        assert [r.offset for r in records] == [0, 1, 2, 3, 4]

    async def test_the_high_watermark_is_the_next_offset_once_fetched(self, group: Group) -> None:
        await group.produce(0, [b"a0", b"a1", b"a2"])
        member = await group.join()
        await read([member], 3)
        assert member.highwater(self.parts(group)[0]) == 3

    async def test_a_new_member_resumes_each_partition_at_its_committed_offset(self, group: Group) -> None:
        p0, p1 = self.parts(group)
        await group.produce(0, [b"a0", b"a1", b"a2", b"a3"])
        await group.produce(1, [b"b0", b"b1"])
        first = await group.join()
        await read([first], 6)
        await first.commit({p0: 2, p1: 2})
        await group.leave(first)
        second = await group.join()
        assert seen(await read([second], 2)) == [(0, 2, None, b"a2"), (0, 3, None, b"a3")]
        await quiet([second])

    async def test_nothing_is_committed_unless_asked(self, group: Group) -> None:
        await group.produce(0, [b"a0", b"a1"])
        first = await group.join()
        await read([first], 2)
        await group.leave(first)
        second = await group.join()
        assert [r.offset for r in await read([second], 2)] == [0, 1]

    async def test_a_later_commit_moves_the_committed_offset_on(self, group: Group) -> None:
        p0, _ = self.parts(group)
        await group.produce(0, [b"a0", b"a1", b"a2"])
        first = await group.join()
        await read([first], 3)
        await first.commit({p0: 1})
        await first.commit({p0: 3})
        await group.leave(first)
        second = await group.join()
        await group.produce(0, [b"a3"])
        assert seen(await read([second], 1)) == [(0, 3, None, b"a3")]

    async def test_a_seek_back_reads_again_from_that_offset(self, group: Group) -> None:
        p0, _ = self.parts(group)
        await group.produce(0, [b"a0", b"a1", b"a2"])
        member = await group.join()
        await read([member], 3)
        member.seek(p0, 1)
        assert [r.offset for r in await read([member], 2)] == [1, 2]
        await quiet([member])

    async def test_a_seek_back_drops_what_was_fetched_past_it(self, group: Group) -> None:
        # A held batch: its first records were fetched, later ones may already wait in the client.
        p0, _ = self.parts(group)
        await group.produce(0, [b"%d" % i for i in range(6)])
        member = await group.join()
        assert [r.offset for r in await read([member], 2, max_records=2)] == [0, 1]
        member.seek(p0, 0)
        assert [r.offset for r in await read([member], 6)] == [0, 1, 2, 3, 4, 5]
        await quiet([member])

    async def test_a_second_member_joining_revokes_first_then_shares_and_reads_from_the_commits(
        self, group: Group
    ) -> None:
        p0, p1 = self.parts(group)
        await group.produce(0, [b"a0", b"a1"])
        await group.produce(1, [b"b0", b"b1"])
        held_while_revoked: list[set[Partition]] = []
        shares: dict[str, list[float]] = {"first": [], "second": []}
        joined: list[Consumer] = []

        async def drain() -> None:  # as the consume loop's drain: commit what finished, still holding
            # (also called as the member first joins, holding nothing yet)
            held = joined[0].assignment() if joined else set()
            held_while_revoked.append(held)
            if held:
                await joined[0].commit({p0: 1, p1: 2})

        first = await group.join(on_revoke=drain, on_share=shares["first"].append)
        joined.append(first)
        await read([first], 4)
        second = await group.join(on_share=shares["second"].append)
        got = await settled([first, second], {p0, p1}, told=lambda: len(shares["first"]) == 2)
        assert held_while_revoked[-1] == {p0, p1}
        assert shares == {"first": [1.0, 0.5], "second": [0.5]}
        # Each partition is read from its commit, whoever holds it now (a1 is read again).
        got = got or await read([first, second], 1)
        assert seen(got) == [(0, 1, None, b"a1")]
        await quiet([first, second])
        lost = {p0, p1} - first.assignment()
        with pytest.raises(CommitRefused):
            await first.commit(dict.fromkeys(lost, 2))

    async def test_a_member_leaving_gives_its_partitions_to_the_others(self, group: Group) -> None:
        p0, p1 = self.parts(group)
        await group.produce(0, [b"a0"])
        await group.produce(1, [b"b0"])
        shares: list[float] = []
        first = await group.join(on_share=shares.append)
        await read([first], 2)
        await first.commit({p0: 1, p1: 1})
        second = await group.join()
        assert await settled([first, second], {p0, p1}) == []
        await group.leave(second)
        assert await settled([first], {p0, p1}, told=lambda: len(shares) == 3) == []
        assert shares == [1.0, 0.5, 1.0]
        await group.produce(0, [b"a1"])
        await group.produce(1, [b"b1"])
        assert sorted(seen(await read([first], 2))) == [(0, 1, None, b"a1"), (1, 1, None, b"b1")]

    async def test_a_commit_of_a_partition_never_assigned_is_refused(self, group: Group) -> None:
        await group.produce(0, [b"a0"])
        member = await group.join()
        await read([member], 1)
        with pytest.raises(CommitRefused):
            await member.commit({(group.topic + ".other", 0): 1})

    async def test_a_seek_or_high_watermark_of_a_partition_not_assigned_is_a_consumer_error(
        self, group: Group
    ) -> None:
        await group.produce(0, [b"a0"])
        member = await group.join()
        await read([member], 1)
        other = (group.topic + ".other", 0)
        with pytest.raises(ConsumerError):
            member.seek(other, 0)
        with pytest.raises(ConsumerError):
            member.highwater(other)
