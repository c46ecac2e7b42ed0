"""In-memory fakes of every port, for unit tests. They follow the real adapters' contracts."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.domain.errors import CommitRefused, ConsumerError, ProviderError, ProviderUnavailable
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, Partition, ShipmentUpdate
from service.domain.outcome import (
    Claimed,
    ClaimRequest,
    DeliveryTarget,
    HeldReport,
    Lease,
    OutboxRow,
    Outcome,
    SealedContact,
)
from service.domain.ports import Batch, DeadLetter, DeliveryStatus, EmailMessage, SendAccepted
from service.domain.status_check import Answer, AwaitingStatus
from service.kafka.producer import PublishFailed


@dataclass
class _Row:
    request: ClaimRequest
    state: str
    created_at: datetime  # the first claim's time: every re-claim reports it
    claims: int = 1
    outcome: Outcome | None = None
    email_attempted: bool = False
    fallback_due: datetime | None = None
    fallback_attempts: int = 0
    sms_sent_at: datetime | None = None  # status look-ups: see migration 0012
    status_due: datetime | None = None
    status_checks: int = 0
    status_gave_up: bool = False


@dataclass
class _Receipt:
    """An outbox row with its sequence number and lease."""

    row: OutboxRow
    seq: int
    published: bool = False
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass
class FakeStore:
    """The store's semantics in memory: a unique (order, milestone), re-claim of unfinished claims, an outbox."""

    rows: dict[tuple[str, str], _Row] = field(default_factory=dict)
    events: dict[str, tuple[InboundRecord, ShipmentUpdate, str | None]] = field(default_factory=dict)
    places: dict[str, int] = field(default_factory=dict)  # event id -> place in the input (first read)
    outbox: dict[uuid.UUID, _Receipt] = field(default_factory=dict)
    contacts: dict[uuid.UUID, SealedContact] = field(default_factory=dict)
    opt_outs: dict[bytes, str] = field(default_factory=dict)
    held: dict[tuple[str, bool], HeldReport] = field(default_factory=dict)
    consent_events: list[tuple[bytes, str, str]] = field(default_factory=list)
    fail_next: Exception | None = None
    down: bool = False  # ping answers False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def ping(self) -> bool:
        return not self.down

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    async def record_events(self, events: Sequence[tuple[InboundRecord, ShipmentUpdate, str | None]]) -> None:
        self._maybe_fail()
        for e in events:
            if e[1].event_id not in self.events:
                self.events[e[1].event_id] = e
                self.places[e[1].event_id] = len(self.places) + 1  # read_seq: first read, in order

    async def first_reads(self, order_ids: Sequence[str]) -> dict[tuple[str, Milestone], int]:
        self._maybe_fail()
        out: dict[tuple[str, Milestone], int] = {}
        wanted = set(order_ids)
        places = [
            ((u.order_id, Milestone(m)), self.places[event_id])
            for event_id, (_, u, m) in self.events.items()
            if m is not None and u.order_id in wanted
        ] + [
            ((order, row.request.milestone), 0)  # known only from its notification: read before all
            for (order, _), row in self.rows.items()
            if order in wanted and row.request.update.event_id not in self.events
        ]
        for key, place in places:
            out[key] = min(out.get(key, place), place)
        return out

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claimed]:
        self._maybe_fail()
        granted = []
        for r in requests:
            key = (r.update.order_id, r.milestone.value)
            row = self.rows.get(key)
            if row is None:
                self.rows[key] = _Row(
                    r, State.CLAIMED, self.now
                )  # final states come with the receipt, in finish
                granted.append(Claimed(r.notification_id, 1, self.now))
            elif row.state == State.CLAIMED:
                row.claims += 1
                granted.append(
                    Claimed(row.request.notification_id, row.claims, row.created_at, row.email_attempted)
                )
        return granted

    async def note_email_attempt(self, notification: uuid.UUID) -> None:
        self._maybe_fail()
        row = self._by_id().get(notification)
        if row is not None:
            row.email_attempted = True

    async def release(self, notifications: Sequence[uuid.UUID]) -> None:
        self._maybe_fail()
        by_id = self._by_id()
        for n in notifications:
            row = by_id.get(n)
            if row is not None and row.state == State.CLAIMED and row.claims > 0:
                row.claims -= 1

    async def finish(
        self,
        outcomes: Sequence[Outcome],
        receipts: Sequence[OutboxRow],
        contacts: Sequence[SealedContact] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        self._maybe_fail()
        if not outcomes:  # as PostgreSQL's: no outcome, nothing written (not the receipts either)
            return
        by_id = self._by_id()
        for o in outcomes:
            row = by_id[o.notification_id]
            # the database's trigger: a send's clock starts when it is first recorded (not again
            # when the same send is written again, as a retried transaction does)
            new_send = row.state != State.SENT or row.outcome is None or row.outcome.reference != o.reference
            row.state, row.outcome, row.fallback_due = o.outcome, o, None
            if o.outcome == State.SENT and o.channel == "sms" and new_send:  # the database's trigger
                row.sms_sent_at, row.status_due, row.status_checks, row.status_gave_up = (
                    self.now,
                    None,
                    0,
                    False,
                )
        for r in receipts:
            self._put_receipt(r, lease)
        for c in contacts:
            self.contacts.setdefault(c.notification_id, c)

    def _by_id(self) -> dict[uuid.UUID, _Row]:
        return {row.request.notification_id: row for row in self.rows.values()}

    async def delivery_target(self, notification: uuid.UUID) -> DeliveryTarget | None:
        row = self._by_id().get(notification)
        if row is None:
            return None
        o = row.outcome
        return DeliveryTarget(
            notification,
            row.request.milestone,
            State(row.state),
            o.channel if o else None,
            o.provider if o else None,
            o.reference if o else None,
            row.request.update.order_id,
            row.request.update.waybill,
            row.request.update.event_id,
            row.request.update.occurred_at,
            fallback_attempts=row.fallback_attempts,
        )

    async def due_fallbacks(self, limit: int, lease_s: float) -> list[DeliveryTarget]:
        self._maybe_fail()
        due = [r for r in self.rows.values() if r.fallback_due is not None and r.fallback_due <= self.now]
        out = []
        for row in sorted(due, key=lambda r: r.fallback_due or self.now)[:limit]:
            row.fallback_due = self.now + timedelta(seconds=lease_s)
            row.fallback_attempts += 1
            target = await self.delivery_target(row.request.notification_id)
            if target is not None:
                out.append(target)
        return out

    async def fallback_later(self, notification: uuid.UUID, after_s: float | None) -> None:
        self._maybe_fail()
        row = self._by_id().get(notification)
        if row is not None and row.fallback_due is not None:
            row.fallback_due = None if after_s is None else self.now + timedelta(seconds=after_s)

    async def due_status_checks(self, limit: int, lease_s: float, after_s: float) -> list[AwaitingStatus]:
        self._maybe_fail()

        def due_at(r: _Row) -> datetime | None:
            awaiting = r.state == State.SENT and r.outcome is not None and r.outcome.channel == "sms"
            if not awaiting or r.status_gave_up or r.sms_sent_at is None:
                return None
            return r.status_due or r.sms_sent_at + timedelta(seconds=after_s)

        due = [(at, r) for r in self.rows.values() if (at := due_at(r)) is not None and at <= self.now]
        out = []
        for _, row in sorted(due, key=lambda d: d[0])[:limit]:
            row.status_due, row.status_checks = self.now + timedelta(seconds=lease_s), row.status_checks + 1
            target = await self.delivery_target(row.request.notification_id)
            if target is not None and row.outcome is not None and row.sms_sent_at is not None:
                out.append(
                    AwaitingStatus(
                        target, row.outcome.provider_message_id, row.sms_sent_at, row.status_checks
                    )
                )
        return out

    async def status_check_later(self, notification: uuid.UUID, after_s: float) -> None:
        self._maybe_fail()
        row = self._by_id().get(notification)
        if row is not None and row.state == State.SENT:
            row.status_due = self.now + timedelta(seconds=after_s)

    async def status_given_up(self, notification: uuid.UUID) -> None:
        self._maybe_fail()
        row = self._by_id().get(notification)
        if row is not None and row.state == State.SENT:
            row.status_gave_up, row.status_due = True, None

    async def opted_out(self, subjects: Sequence[bytes]) -> set[bytes]:
        self._maybe_fail()
        return {s for s in subjects if s in self.opt_outs}

    async def set_consent(self, subjects: Sequence[bytes], *, opted_out: bool, source: str) -> int:
        # each subject once, as a statement over the set of them changes each row once
        changed = [s for s in dict.fromkeys(subjects) if (s in self.opt_outs) != opted_out]
        for s in changed:
            if opted_out:
                self.opt_outs[s] = source
            else:
                del self.opt_outs[s]
            self.consent_events.append((s, "opt_out" if opted_out else "opt_in", source))
        return len(changed)

    async def hold_report(self, reference: str, provider: str, delivered: bool, code: str | None) -> None:
        self.held.setdefault((reference, delivered), HeldReport(reference, provider, delivered, code))

    async def take_reports(self, references: Sequence[str]) -> list[HeldReport]:
        taken = [r for key, r in self.held.items() if key[0] in references]
        for r in taken:
            del self.held[(r.reference, r.delivered)]
        return taken

    async def contact(self, notification: uuid.UUID) -> SealedContact | None:
        return self.contacts.get(notification)

    async def record_delivery(
        self,
        notification: uuid.UUID,
        reference: str,
        state: State,
        reason: str | None,
        receipt: OutboxRow,
        *,
        fallback_in_s: float | None = None,
        lease: Lease | None = None,
    ) -> bool:
        self._maybe_fail()
        row = self._by_id().get(notification)
        if (
            row is None
            or row.outcome is None
            or row.outcome.reference != reference
            or row.state != State.SENT
        ):
            return False
        row.state = state
        if fallback_in_s is not None:
            row.fallback_due, row.fallback_attempts = self.now + timedelta(seconds=fallback_in_s), 1
        self._put_receipt(receipt, lease)
        return True

    def _put_receipt(self, row: OutboxRow, lease: Lease | None) -> None:
        if row.receipt_id not in self.outbox:
            self.outbox[row.receipt_id] = _Receipt(row, next(self._seq))
            if lease is not None:
                self._lease(self.outbox[row.receipt_id], lease)

    def _lease(self, r: _Receipt, lease: Lease) -> None:
        r.lease_owner, r.lease_until = lease.owner, self.now + timedelta(seconds=lease.seconds)

    def _pending(self, notification: uuid.UUID) -> list[_Receipt]:
        rows = [r for r in self.outbox.values() if r.row.notification_id == notification and not r.published]
        return sorted(rows, key=lambda r: r.seq)

    def _held_by_other(self, r: _Receipt, owner: str | None) -> bool:
        return r.lease_owner not in (None, owner) and r.lease_until is not None and r.lease_until > self.now

    async def take_receipts(
        self, lease: Lease, notifications: Sequence[uuid.UUID] | None = None, limit: int = 200
    ) -> list[OutboxRow]:
        self._maybe_fail()
        if notifications is None:  # the relay: notifications whose first unpublished row nobody holds
            due: dict[uuid.UUID, int] = {}
            for n in {r.row.notification_id for r in self.outbox.values()}:
                pending = self._pending(n)
                if pending and not self._held_by_other(pending[0], None):
                    due[n] = pending[0].seq
            notifications = sorted(due, key=lambda n: due[n])[:limit]
        taken: list[_Receipt] = []
        for n in set(notifications):
            pending = self._pending(n)
            if pending and not self._held_by_other(pending[0], lease.owner):
                for r in pending:
                    self._lease(r, lease)
                taken += pending
        return [r.row for r in sorted(taken, key=lambda r: r.seq)]

    async def complete_receipts(self, lease: Lease, published: Sequence[OutboxRow]) -> list[OutboxRow]:
        self._maybe_fail()
        held: set[uuid.UUID] = set()
        for row in published:
            r = self.outbox[row.receipt_id]
            if r.lease_owner == lease.owner and not r.published:
                r.published, r.lease_owner, r.lease_until = True, None, None
                held.add(row.notification_id)
        successors = [r for n in held for r in self._pending(n)]
        for r in successors:
            self._lease(r, lease)
        return [r.row for r in sorted(successors, key=lambda r: r.seq)]

    async def release_receipts(self, lease: Lease, receipt_ids: Sequence[uuid.UUID]) -> None:
        self._maybe_fail()
        for rid in receipt_ids:
            r = self.outbox[rid]
            if r.lease_owner == lease.owner and not r.published:
                r.lease_owner, r.lease_until = None, None

    async def unpublished_receipts(self, limit: int = 1000) -> list[OutboxRow]:
        return [r.row for r in sorted(self.outbox.values(), key=lambda r: r.seq) if not r.published][:limit]


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
