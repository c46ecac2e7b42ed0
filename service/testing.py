"""In-memory fakes of every port, for unit tests. They follow the real adapters' contracts."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.domain.dwell import Dwell, End, PickupTime, dwell_seconds
from service.domain.errors import CommitRefused, ConsumerError, ProviderError, ProviderUnavailable
from service.domain.model import InboundRecord, Partition
from service.domain.outcome import OutboxRow
from service.domain.ports import Batch, DeadLetter, DeliveryStatus, EmailMessage, SendAccepted
from service.domain.status_check import Answer
from service.fake_follow_ups import FakeFollowUps as FakeFollowUps  # noqa: PLC0414  # re-exported, as FakeStore
from service.fake_store import FakeStore as FakeStore  # noqa: PLC0414  # re-exported (PEP 484 form): it lives in fake_store.py
from service.kafka.producer import PublishFailed


@dataclass
class FakeSmsSender:
    """Accepts every message (or raises the queued errors first) and remembers it.

    ``swallowed`` makes the next N sends succeed at the "provider" yet raise ``ProviderUnavailable``
    to the caller: the ambiguous case; ``find_sent`` then finds them (unless ``lookup_fails``).
    ``statuses`` (by reference) is what ``delivery_status`` answers; a message sent but not listed
    there is pending, one never sent is unknown (None); ``status_errors`` are raised first.
    """

    name: str = "fake-sms"
    sent: list[tuple[str, str]] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    swallowed: int = 0
    lookup_fails: bool = False
    statuses: dict[str, DeliveryStatus] = field(default_factory=dict)
    status_errors: list[ProviderError] = field(default_factory=list)
    status_lookups: list[str] = field(default_factory=list)  # references looked up, in order
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _by_ref: dict[str, SendAccepted] = field(default_factory=dict)

    async def send_sms(self, to_e164: str, body: str, *, reference: str) -> SendAccepted:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((to_e164, body))
        self.references.append(reference)
        accepted = SendAccepted(self.name, f"FAKE{next(self._ids):06d}", "queued")
        self._by_ref[reference] = accepted
        if self.swallowed:
            self.swallowed -= 1
            raise ProviderUnavailable(self.name, "timeout")
        return accepted

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None:
        if self.lookup_fails:
            raise ProviderUnavailable(self.name, "network")
        return self._by_ref.get(reference)

    async def delivery_status(self, message_id: str | None, *, reference: str) -> DeliveryStatus | None:
        self.status_lookups.append(reference)
        if self.status_errors:
            raise self.status_errors.pop(0)
        if reference in self.statuses:
            return self.statuses[reference]
        return DeliveryStatus(Answer.PENDING) if reference in self._by_ref else None


@dataclass
class FakeEmailSender:
    name: str = "fake-email"
    sent: list[tuple[str, EmailMessage]] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)

    async def send_email(self, to: str, message: EmailMessage, *, reference: str) -> SendAccepted:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((to, message))
        return SendAccepted(self.name, f"MAIL{len(self.sent):06d}", "queued")


class FakeClock:
    """A monotonic clock that only moves when told, and a sleep that moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeReceiptSink:
    """``fail``: the broker acknowledges nothing, and ``publish`` raises what the real one does."""

    published: list[OutboxRow] = field(default_factory=list)
    fail: bool = False

    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        if self.fail:
            raise PublishFailed("kafka: fake broker down")
        self.published.extend(receipts)


@dataclass
class FakeDeadLetterSink:
    """``fail`` as for ``FakeReceiptSink``."""

    letters: list[DeadLetter] = field(default_factory=list)
    fail: bool = False

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail:
            raise PublishFailed("kafka: fake broker down")
        self.letters.extend(letters)


class FakeGroup:
    """A consumer group over in-memory partition logs, as the broker keeps it: members join and
    leave, and each change is an eager rebalance, as aiokafka's: every member is revoked (its
    ``on_revoke`` awaited while it still holds its partitions, the joiner's too), then the
    partitions are dealt out in turn, each member told its share (``on_share``) and reading each
    partition it got from the group's committed offset."""

    def __init__(self, partitions: Sequence[Partition]) -> None:
        self.partitions = list(partitions)
        self.logs: dict[Partition, list[InboundRecord]] = {p: [] for p in partitions}
        self.committed: dict[Partition, int] = {}
        self.members: list[FakeConsumer] = []

    def append(self, partition: Partition, value: bytes | None, key: bytes | None = None) -> InboundRecord:
        log = self.logs.setdefault(partition, [])
        record = InboundRecord(
            partition[0], partition[1], len(log), key, value, timestamp_ms=1_700_000_000_000
        )
        log.append(record)
        return record

    async def join(
        self,
        *,
        on_revoke: Callable[[], Awaitable[None]] | None = None,
        on_share: Callable[[float], None] | None = None,
    ) -> FakeConsumer:
        member = FakeConsumer(self.partitions, group=self)
        member.on_revoke, member.on_share = on_revoke, on_share
        await self.rebalance()
        return member

    async def leave(self, member: FakeConsumer) -> None:
        """The member stops (its own ``on_revoke`` is not called); the others rebalance."""
        self.members.remove(member)
        if self.members:
            await self.rebalance()

    async def rebalance(self) -> None:
        for member in self.members:
            await member.revoke()
        for i, partition in enumerate(sorted(self.partitions)):
            self.members[i % len(self.members)].assign([partition])
        for member in self.members:
            if member.on_share is not None:
                member.on_share(len(member.assigned) / len(self.partitions))


class FakeConsumer:
    """A consumer-group member over in-memory partition logs, with the port's rules: explicit
    commits only, a commit of a partition not assigned refused (``CommitRefused``), a seek or high
    watermark of one ``ConsumerError``, a high watermark known only once the partition was fetched
    from. ``commit_errors`` are raised by the next commits, in order; ``when_idle`` is called by every
    fetch that finds nothing; a rebalance is ``revoke`` (awaiting ``on_revoke`` first, as aiokafka's
    listener does) then ``assign``. Built alone, it is the only member of its group and holds every
    partition; members that join and leave are ``FakeGroup``'s (proven against ``KafkaConsumer`` in
    tests/contracts/consumer.py)."""

    def __init__(
        self, partitions: Sequence[Partition] = (("t", 0),), *, group: FakeGroup | None = None
    ) -> None:
        self.group = group if group is not None else FakeGroup(partitions)
        self.logs = self.group.logs
        self.committed = self.group.committed  # the group's: a member that joins later reads from them
        self.assigned: set[Partition] = set(partitions) if group is None else set()
        self.positions: dict[Partition, int] = {p: 0 for p in self.assigned}
        self.commits: list[dict[Partition, int]] = []  # every commit asked for, taken or not
        self.seeks: list[tuple[Partition, int]] = []
        self.commit_errors: list[Exception] = []
        self.on_revoke: Callable[[], Awaitable[None]] | None = None
        self.on_share: Callable[[float], None] | None = None
        self.when_idle: Callable[[], None] | None = None
        self._seen: set[Partition] = set()
        self.group.members.append(self)

    def append(self, partition: Partition, value: bytes | None, key: bytes | None = None) -> InboundRecord:
        return self.group.append(partition, value, key)

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Batch:
        batch: Batch = {}
        left = max_records
        for partition in sorted(self.assigned):
            self._seen.add(partition)
            start = self.positions.get(partition, 0)
            records = self.logs.get(partition, [])[start : start + left]
            if records:
                batch[partition] = list(records)
                self.positions[partition] = records[-1].offset + 1
                left -= len(records)
        if not batch:
            if self.when_idle is not None:
                self.when_idle()
            await asyncio.sleep(0)  # a real fetch waits up to timeout_ms: let others run
        return batch

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        self.commits.append(dict(offsets))
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        if not set(offsets) <= self.assigned:
            raise CommitRefused("not assigned")
        self.committed.update(offsets)

    def seek(self, partition: Partition, offset: int) -> None:
        if partition not in self.assigned:
            raise ConsumerError(f"seek on {partition}: not assigned")
        self.seeks.append((partition, offset))
        self.positions[partition] = offset

    def assignment(self) -> set[Partition]:
        return set(self.assigned)

    def highwater(self, partition: Partition) -> int | None:
        if partition not in self.assigned:
            raise ConsumerError(f"high watermark of {partition}: not assigned")
        if partition not in self._seen:
            return None
        return len(self.logs.get(partition, []))

    async def revoke(self, partitions: Sequence[Partition] | None = None) -> None:
        """A rebalance takes partitions away (all of them: rebalances are eager)."""
        if self.on_revoke is not None:
            await self.on_revoke()
        for p in list(self.assigned) if partitions is None else partitions:
            self.assigned.discard(p)
            self._seen.discard(p)

    def assign(self, partitions: Sequence[Partition]) -> None:
        """The group gives partitions: reading starts at each one's committed offset."""
        for p in partitions:
            self.assigned.add(p)
            self.positions[p] = self.committed.get(p, 0)


@dataclass
class FakePickups:
    """The ``PickupStore`` port in memory: each order's ends, as ``service.store.dwell_times`` keeps them
    (the earliest time of each end, the first ready event's place); ``rows`` is open to assert on."""

    rows: dict[str, dict[str, object]] = field(default_factory=dict)
    fail_next: Exception | None = None

    async def record_pickup_times(self, times: Sequence[PickupTime]) -> list[Dwell]:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        completed: list[Dwell] = []
        before = {o for o, r in self.rows.items() if r["ready_at"] and r["picked_up_at"]}
        for t in times:
            row = self.rows.setdefault(t.order_id, {"place": None, "ready_at": None, "picked_up_at": None})
            key = "ready_at" if t.end is End.READY else "picked_up_at"
            at = row[key]
            row[key] = t.at if not isinstance(at, datetime) else min(at, t.at)
            if t.end is End.READY and row["place"] is None:
                row["place"] = t.place
        for order in dict.fromkeys(t.order_id for t in times):
            row = self.rows[order]
            ready, picked = row["ready_at"], row["picked_up_at"]
            if order not in before and isinstance(ready, datetime) and isinstance(picked, datetime):
                completed.append(Dwell(order, str(row["place"] or ""), dwell_seconds(ready, picked), picked))
        return completed

    async def picked_up(self, order_ids: Sequence[str]) -> set[str]:
        return {o for o in order_ids if o in self.rows and self.rows[o]["picked_up_at"] is not None}
