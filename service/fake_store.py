"""The store's fake (re-exported by ``service.testing``): the ``NotificationStore`` port's semantics
in memory, one part per concern as in ``service.store`` (claims, delivery reports and the jobs'
leases, the receipt outbox, contacts and consent, the recipient lists), composed into ``FakeStore``. It is proven
against the same contract as ``PostgresStore`` (``tests/contracts/store.py``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.domain.consent_snapshot import ConsentRecord
from service.domain.lifecycle import State
from service.domain.milestones import Milestone, is_collection
from service.domain.model import InboundRecord, ShipmentUpdate
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
from service.domain.screening import NumberMark, NumberReport
from service.domain.status_check import AwaitingStatus


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
class _FakeTables:
    """The fake's tables and what every part shares: failing on demand, rows by id, writing a receipt."""

    rows: dict[tuple[str, str], _Row] = field(default_factory=dict)
    events: dict[str, tuple[InboundRecord, ShipmentUpdate, str | None]] = field(default_factory=dict)
    places: dict[str, int] = field(default_factory=dict)  # event id -> place in the input (first read)
    outbox: dict[uuid.UUID, _Receipt] = field(default_factory=dict)
    contacts: dict[uuid.UUID, SealedContact] = field(default_factory=dict)
    opt_outs: dict[bytes, str] = field(default_factory=dict)
    held: dict[tuple[str, bool], HeldReport] = field(default_factory=dict)
    consent_events: list[tuple[bytes, str, str]] = field(default_factory=list)
    consent_set_at: dict[bytes, datetime] = field(default_factory=dict)  # each subject's last change
    consent_orders: list[str | None] = field(default_factory=list)  # the order each change was made from
    pilot: dict[bytes, str] = field(default_factory=dict)  # blind index -> kind (phone, email)
    pilot_events: list[tuple[bytes, str, str]] = field(default_factory=list)
    phone_health: dict[bytes, tuple[int, NumberMark | None]] = field(default_factory=dict)  # streak, mark
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

    def _by_id(self) -> dict[uuid.UUID, _Row]:
        return {row.request.notification_id: row for row in self.rows.values()}

    def _put_receipt(self, row: OutboxRow, lease: Lease | None) -> None:
        if row.receipt_id not in self.outbox:
            self.outbox[row.receipt_id] = _Receipt(row, next(self._seq))
            if lease is not None:
                self._lease(self.outbox[row.receipt_id], lease)

    def _lease(self, r: _Receipt, lease: Lease) -> None:
        r.lease_owner, r.lease_until = lease.owner, self.now + timedelta(seconds=lease.seconds)


class FakeClaims(_FakeTables):
    """Events recorded as read (their places), claims, and the outcomes that finish them."""

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

    async def first_collections(self, order_ids: Sequence[str]) -> dict[str, int]:
        self._maybe_fail()
        out: dict[str, int] = {}
        for event_id, (_, u, m) in self.events.items():
            if m is None and u.order_id in set(order_ids) and is_collection(u.tms_status):
                place = self.places[event_id]
                out[u.order_id] = min(out.get(u.order_id, place), place)
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


class FakeDeliveries(_FakeTables):
    """What happens after a send: reports (and those held), fallbacks, status look-ups."""

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

    async def hold_report(self, reference: str, provider: str, delivered: bool, code: str | None) -> None:
        self.held.setdefault((reference, delivered), HeldReport(reference, provider, delivered, code))

    async def take_reports(self, references: Sequence[str]) -> list[HeldReport]:
        taken = [r for key, r in self.held.items() if key[0] in references]
        for r in taken:
            del self.held[(r.reference, r.delivered)]
        return taken


class FakeOutbox(_FakeTables):
    """The receipt outbox: leases, publishing order, the rows left for the relay."""

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


class FakeContacts(_FakeTables):
    """Sealed contacts and consent."""

    async def opted_out(self, subjects: Sequence[bytes]) -> set[bytes]:
        self._maybe_fail()
        return {s for s in subjects if s in self.opt_outs}

    async def consent_records(self, subjects: Sequence[bytes]) -> dict[bytes, ConsentRecord]:
        self._maybe_fail()
        found: dict[bytes, ConsentRecord] = {}
        for s in dict.fromkeys(subjects):
            if s in self.opt_outs:
                found[s] = ConsentRecord(True, self.opt_outs[s], self.consent_set_at[s])
                continue
            ins = [
                source
                for subject, action, source in self.consent_events
                if subject == s and action == "opt_in"
            ]
            if ins:
                found[s] = ConsentRecord(False, ins[-1], self.consent_set_at[s])
        return found

    async def set_consent(
        self, subjects: Sequence[bytes], *, opted_out: bool, source: str, order_id: str | None = None
    ) -> int:
        # each subject once, as a statement over the set of them changes each row once
        changed = [s for s in dict.fromkeys(subjects) if (s in self.opt_outs) != opted_out]
        for s in changed:
            if opted_out:
                self.opt_outs[s] = source
            else:
                del self.opt_outs[s]
            self.consent_events.append((s, "opt_out" if opted_out else "opt_in", source))
            self.consent_set_at[s] = self.now
        if changed:
            self.consent_orders.append(order_id)
        return len(changed)

    async def contact(self, notification: uuid.UUID) -> SealedContact | None:
        return self.contacts.get(notification)


class FakeRecipientLists(_FakeTables):
    """The pilot's allow-list and the numbers marked undeliverable (migration 0017)."""

    async def pilot_listed(self, subjects: Sequence[bytes]) -> set[bytes]:
        self._maybe_fail()
        return {s for s in subjects if s in self.pilot}

    async def set_pilot(self, subject: bytes, kind: str, *, listed: bool, source: str) -> bool:
        self._maybe_fail()
        if (subject in self.pilot) == listed:
            return False
        if listed:
            self.pilot[subject] = kind
        else:
            del self.pilot[subject]
        self.pilot_events.append((subject, "add" if listed else "remove", source))
        return True

    async def pilot_size(self) -> dict[str, int]:
        kinds = list(self.pilot.values())
        return {"phone": kinds.count("phone"), "email": kinds.count("email")}

    async def marked_numbers(self, subjects: Sequence[bytes]) -> set[bytes]:
        self._maybe_fail()
        return {s for s in subjects if s in self.phone_health and self.phone_health[s][1] is not None}

    async def mark_number(self, subject: bytes, reason: str) -> bool:
        self._maybe_fail()
        streak, mark = self.phone_health.get(subject, (0, None))
        if mark is not None:
            return False
        self.phone_health[subject] = (streak, NumberMark(self.now, reason))
        return True

    async def unmark_number(self, subject: bytes) -> bool:
        self._maybe_fail()
        if self.phone_health.get(subject, (0, None))[1] is None:
            return False
        del self.phone_health[subject]
        return True

    async def number_report(self, notification: uuid.UUID, *, delivered: bool) -> NumberReport | None:
        self._maybe_fail()
        row = self._by_id().get(notification)
        subject = row.request.phone_subject if row is not None else None
        if subject is None:
            return None
        streak, mark = self.phone_health.get(subject, (0, None))
        if delivered:
            if streak == 0:  # as PostgreSQL's: only numbers that failed are kept
                return None
            streak = 0
        else:
            streak += 1
        self.phone_health[subject] = (streak, mark)
        return NumberReport(subject, streak, mark is not None)

    async def number_marks(self, subjects: Sequence[bytes]) -> dict[bytes, NumberMark]:
        return {s: m for s in subjects if (m := self.phone_health.get(s, (0, None))[1]) is not None}


@dataclass
class FakeStore(FakeClaims, FakeDeliveries, FakeOutbox, FakeContacts, FakeRecipientLists):
    """The store's semantics in memory: a unique (order, milestone), re-claim of unfinished claims, an outbox."""
