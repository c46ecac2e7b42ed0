"""The notification store on PostgreSQL (asyncpg). One statement per batch, never one per event.

Library errors are translated here: callers see ``StoreUnavailable`` and nothing from asyncpg.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import asyncpg

from service.domain.errors import StoreUnavailable
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, ShipmentUpdate
from service.domain.outcome import (
    Claimed,
    ClaimRequest,
    DeliveryTarget,
    HeldReport,
    Lease,
    LinkedNotification,
    OutboxRow,
    Outcome,
    SealedContact,
    TimelineEntry,
)
from service.domain.status_check import AwaitingStatus
from service.store.migrate import migrate

# In the batch's order (the ORDER BY), so that places (read_seq) follow it; a row already there
# keeps its first place.
_RECORD_EVENTS = """
INSERT INTO shipment_events
    (event_id, order_id, tms_status, milestone, occurred_at, source_topic, source_partition, source_offset)
SELECT event_id, order_id, tms_status, milestone, occurred_at, topic, part, "offset"
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::int[], $8::bigint[])
    WITH ORDINALITY AS t(event_id, order_id, tms_status, milestone, occurred_at, topic, part, "offset", n)
ORDER BY n
ON CONFLICT (event_id) DO NOTHING
"""

# The place of each (order, milestone): its first recorded event's (0 without one: recorded
# before places existed, or a notification whose event is no longer recorded). Index scans on
# shipment_events (order_id), notifications (order_id, milestone) and shipment_events' key.
_FIRST_READS = """
SELECT order_id, milestone, min(place) AS place FROM (
    SELECT order_id, milestone, coalesce(read_seq, 0) AS place FROM shipment_events
    WHERE order_id = ANY($1::text[]) AND milestone IS NOT NULL
    UNION ALL
    SELECT n.order_id, n.milestone, 0 FROM notifications n
    WHERE n.order_id = ANY($1::text[])
        AND NOT EXISTS (SELECT 1 FROM shipment_events e WHERE e.event_id = n.event_id)
) AS reads GROUP BY order_id, milestone
"""

# A new (order, milestone) is inserted; one whose earlier claim never finished (a crash mid-send)
# is claimed again and counted, whatever this event's verdict (a stale verdict then settles it);
# one that reached an outcome is a duplicate and returns nothing. Every row starts 'claimed', a
# stale one too: its final state is written by ``finish`` with its receipt, in one transaction, so
# a crash in between leaves a claim to settle, never a decision without a receipt.
_CLAIM = f"""
INSERT INTO notifications
    (id, order_id, waybill, milestone, milestone_rank, event_id, event_occurred_at, state,
     link_id, phone_subject, email_subject)
SELECT id, order_id, waybill, milestone, rank, event_id, occurred_at, '{State.CLAIMED}', link_id, phone, email
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::text[], $7::timestamptz[],
            $8::bytea[], $9::bytea[], $10::bytea[])
    AS t(id, order_id, waybill, milestone, rank, event_id, occurred_at, link_id, phone, email)
ON CONFLICT (order_id, milestone) DO UPDATE
    SET claims = notifications.claims + 1, updated_at = now()
    WHERE notifications.state = '{State.CLAIMED}'
RETURNING id, claims, created_at, email_attempted_at IS NOT NULL AS email_attempted
"""  # noqa: S608

_EMAIL_ATTEMPT = """
UPDATE notifications SET email_attempted_at = now()
WHERE id = $1 AND email_attempted_at IS NULL
"""

# A held notification gives its claim back: the next claim of it is not a crash's re-claim.
_RELEASE = f"""
UPDATE notifications SET claims = claims - 1, updated_at = now()
WHERE id = ANY($1::uuid[]) AND state = '{State.CLAIMED}' AND claims > 0
"""  # noqa: S608

_FINISH = """
UPDATE notifications AS n SET
    state = u.state, channel = u.channel, provider = u.provider, provider_message_id = u.provider_message_id,
    locale = u.locale, sms_encoding = u.sms_encoding, sms_segments = u.sms_segments, reason = u.reason,
    reference = u.reference, fallback_due_at = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[],
            $10::text[])
    AS u(id, state, channel, provider, provider_message_id, locale, sms_encoding, sms_segments, reason, reference)
WHERE n.id = u.id
"""

# Lease due fallbacks: push their due time out by the lease and count the attempt, skipping rows
# another instance is leasing right now.
_LEASE_FALLBACKS = """
UPDATE notifications SET fallback_due_at = now() + make_interval(secs => $2::float8),
    fallback_attempts = fallback_attempts + 1, updated_at = now()
WHERE id IN (
    SELECT id FROM notifications WHERE fallback_due_at <= now()
    ORDER BY fallback_due_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING id, milestone, state, channel, provider, reference, order_id, waybill, event_id,
    event_occurred_at, fallback_attempts
"""

# Lease SMS sends with no final status whose look-up is due (the first ``$3`` seconds after the
# send): push their due time out by the lease and count the look, skipping rows another instance
# is leasing right now. updated_at is left alone: a look-up changes nothing of the notification.
_LEASE_STATUS_CHECKS = f"""
UPDATE notifications SET status_check_due_at = now() + make_interval(secs => $2::float8),
    status_checks = status_checks + 1
WHERE id IN (
    SELECT id FROM notifications
    WHERE state = '{State.SENT}' AND channel = 'sms' AND status_gave_up_at IS NULL AND sms_sent_at IS NOT NULL
        AND coalesce(status_check_due_at, sms_sent_at + make_interval(secs => $3::float8)) <= now()
    ORDER BY coalesce(status_check_due_at, sms_sent_at + make_interval(secs => $3::float8))
    LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING id, milestone, state, channel, provider, reference, order_id, waybill, event_id,
    event_occurred_at, fallback_attempts, provider_message_id, sms_sent_at, status_checks
"""  # noqa: S608

_DELIVERY_TARGET = """
SELECT id, milestone, state, channel, provider, reference, order_id, waybill, event_id,
    event_occurred_at, fallback_attempts
FROM notifications WHERE id = $1
"""

_CONTACTS_INSERT = """
INSERT INTO notification_contacts (notification_id, key_id, ciphertext)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])
ON CONFLICT (notification_id) DO NOTHING
"""

# A receipt is born leased to its writer ($5; NULL: free), so no one else publishes it meanwhile.
_OUTBOX_INSERT = """
INSERT INTO receipt_outbox (receipt_id, notification_id, order_id, payload, lease_owner, lease_until)
SELECT r, n, o, p, $5::text,
    CASE WHEN $5::text IS NULL THEN NULL ELSE now() + make_interval(secs => $6::float8) END
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[]) AS t(r, n, o, p)
ON CONFLICT (receipt_id) DO NOTHING
"""

# Publishing a notification's receipts is serialised per notification (a transaction-scoped
# advisory lock, taken in key order, so lockers never deadlock); the statements after it see
# every row committed before. Keys: this class and the first 32 bits of the notification id.
_OUTBOX_LOCK = "SELECT pg_advisory_xact_lock(20290, k) FROM unnest($1::int4[]) AS k"  # 20290: "OB"

# The relay's candidates: notifications whose first unpublished row nobody holds.
_OUTBOX_DUE = """
SELECT notification_id FROM (
    SELECT DISTINCT ON (notification_id) notification_id, seq, lease_owner, lease_until
    FROM receipt_outbox WHERE published_at IS NULL ORDER BY notification_id, seq
) AS heads
WHERE lease_owner IS NULL OR lease_until <= now()
ORDER BY seq LIMIT $1
"""

# Take every unpublished row of each notification whose first unpublished row (its head) is free
# or ours: whoever holds the head holds the rows behind it (they cannot go out before it anyway).
_OUTBOX_TAKE = """
WITH pending AS (
    SELECT receipt_id, notification_id, seq, lease_owner, lease_until FROM receipt_outbox
    WHERE notification_id = ANY($3::uuid[]) AND published_at IS NULL
), free AS (
    SELECT notification_id FROM (
        SELECT DISTINCT ON (notification_id) notification_id, lease_owner, lease_until
        FROM pending ORDER BY notification_id, seq
    ) AS heads
    WHERE lease_owner IS NULL OR lease_owner = $1 OR lease_until <= now()
)
UPDATE receipt_outbox AS o SET lease_owner = $1, lease_until = now() + make_interval(secs => $2::float8)
FROM pending AS p JOIN free AS f USING (notification_id)
WHERE o.receipt_id = p.receipt_id
RETURNING o.receipt_id, o.notification_id, o.order_id, o.payload, o.seq
"""

# Mark what this owner published (a row another owner took over after our lease ran out stays theirs).
_OUTBOX_MARK = """
UPDATE receipt_outbox SET published_at = now(), lease_owner = NULL, lease_until = NULL
WHERE receipt_id = ANY($2::uuid[]) AND lease_owner = $1 AND published_at IS NULL
RETURNING notification_id
"""

# The rows written behind the ones just published wait for us (their writers found our rows
# ahead of theirs): they are ours to publish next, whoever wrote them.
_OUTBOX_SUCCESSORS = """
UPDATE receipt_outbox SET lease_owner = $1, lease_until = now() + make_interval(secs => $2::float8)
WHERE notification_id = ANY($3::uuid[]) AND published_at IS NULL
RETURNING receipt_id, notification_id, order_id, payload, seq
"""


#: What a lost or failing database looks like to asyncpg. InternalClientError comes from a
#: connection whose server went away mid-transaction (MagicStack/asyncpg#784).
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise StoreUnavailable(f"database: {type(exc).__name__}") from exc


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, pool_size: int = 4, run_migrations: bool = True) -> PostgresStore:
        async with translated():
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, command_timeout=30)
            if run_migrations:
                async with pool.acquire() as conn:
                    await migrate(conn)
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> bool:
        try:
            async with self._pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except DATABASE_ERRORS:
            return False
        return True

    async def record_events(self, events: Sequence[tuple[InboundRecord, ShipmentUpdate, str | None]]) -> None:
        if not events:
            return
        cols: list[list[object]] = [[] for _ in range(8)]
        for rec, u, milestone in events:
            for col, v in zip(
                cols,
                (
                    u.event_id,
                    u.order_id,
                    u.tms_status,
                    milestone,
                    u.occurred_at,
                    rec.topic,
                    rec.partition,
                    rec.offset,
                ),
                strict=True,
            ):
                col.append(v)
        async with translated():
            await self._pool.execute(_RECORD_EVENTS, *cols)

    async def first_reads(self, order_ids: Sequence[str]) -> dict[tuple[str, Milestone], int]:
        """Where each (order, milestone) of these orders was first read: the stale rule's input."""
        if not order_ids:
            return {}
        async with translated():
            rows = await self._pool.fetch(_FIRST_READS, list(order_ids))
        return {(r["order_id"], Milestone(r["milestone"])): int(r["place"]) for r in rows}

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claimed]:
        """Claim notifications; returns only the claims granted (new, or re-claimed after a crash)."""
        if not requests:
            return []
        args = (
            [r.notification_id for r in requests],
            [r.update.order_id for r in requests],
            [r.update.waybill for r in requests],
            [r.milestone.value for r in requests],
            [r.milestone.rank for r in requests],
            [r.update.event_id for r in requests],
            [r.update.occurred_at for r in requests],
            [r.link_id for r in requests],
            [r.phone_subject for r in requests],
            [r.email_subject for r in requests],
        )
        async with translated():
            rows = await self._pool.fetch(_CLAIM, *args)
        return [Claimed(r["id"], int(r["claims"]), r["created_at"], r["email_attempted"]) for r in rows]

    async def note_email_attempt(self, notification: uuid.UUID) -> None:
        """Mark that an email of this notification may go out (before the first email request)."""
        async with translated():
            await self._pool.execute(_EMAIL_ATTEMPT, notification)

    async def release(self, notifications: Sequence[uuid.UUID]) -> None:
        """Give back claims of notifications held before anything was sent (see ``_RELEASE``)."""
        if notifications:
            async with translated():
                await self._pool.execute(_RELEASE, list(notifications))

    async def finish(
        self,
        outcomes: Sequence[Outcome],
        receipts: Sequence[OutboxRow],
        contacts: Sequence[SealedContact] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """Record outcomes, their receipts (the outbox, born leased to ``lease``) and sealed contacts
        in one transaction."""
        if not outcomes:
            return
        state_args = (
            [o.notification_id for o in outcomes],
            [o.outcome for o in outcomes],
            [o.channel for o in outcomes],
            [o.provider for o in outcomes],
            [o.provider_message_id for o in outcomes],
            [o.locale for o in outcomes],
            [o.sms_encoding for o in outcomes],
            [o.sms_segments for o in outcomes],
            [o.reason for o in outcomes],
            [o.reference for o in outcomes],
        )
        outbox_args = (
            [r.receipt_id for r in receipts],
            [r.notification_id for r in receipts],
            [r.order_id for r in receipts],
            [r.payload for r in receipts],
            lease.owner if lease else None,
            lease.seconds if lease else 0.0,
        )
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_FINISH, *state_args)
            await conn.execute(_OUTBOX_INSERT, *outbox_args)
            if contacts:
                await conn.execute(
                    _CONTACTS_INSERT,
                    [c.notification_id for c in contacts],
                    [c.key_id for c in contacts],
                    [c.ciphertext for c in contacts],
                )

    async def delivery_target(self, notification: uuid.UUID) -> DeliveryTarget | None:
        async with translated():
            r = await self._pool.fetchrow(_DELIVERY_TARGET, notification)
        return None if r is None else _target(r)

    async def due_fallbacks(self, limit: int, lease_s: float) -> list[DeliveryTarget]:
        """Email fallbacks that are due, leased to this caller for ``lease_s`` (another instance
        skips them meanwhile; if this one dies, they fall due again when the lease ends)."""
        async with translated():
            rows = await self._pool.fetch(_LEASE_FALLBACKS, limit, lease_s)
        return [_target(r) for r in rows]

    async def fallback_later(self, notification: uuid.UUID, after_s: float | None) -> None:
        """Try this notification's email fallback again in ``after_s`` seconds; None: no longer owed."""
        async with translated():
            await self._pool.execute(
                "UPDATE notifications SET fallback_due_at = CASE WHEN $2::float8 IS NULL THEN NULL"
                " ELSE now() + make_interval(secs => $2::float8) END, updated_at = now()"
                " WHERE id = $1 AND fallback_due_at IS NOT NULL",
                notification,
                after_s,
            )

    async def due_status_checks(self, limit: int, lease_s: float, after_s: float) -> list[AwaitingStatus]:
        """SMS sends with no final status whose look-up is due, leased to this caller for ``lease_s``
        (another instance skips them meanwhile; if this one dies, they fall due when the lease ends)."""
        async with translated():
            rows = await self._pool.fetch(_LEASE_STATUS_CHECKS, limit, lease_s, after_s)
        return [
            AwaitingStatus(_target(r), r["provider_message_id"], r["sms_sent_at"], int(r["status_checks"]))
            for r in rows
        ]

    async def status_check_later(self, notification: uuid.UUID, after_s: float) -> None:
        async with translated():
            await self._pool.execute(
                "UPDATE notifications SET status_check_due_at = now() + make_interval(secs => $2::float8)"  # noqa: S608  # only life-cycle constants are interpolated
                f" WHERE id = $1 AND state = '{State.SENT}'",
                notification,
                after_s,
            )

    async def status_given_up(self, notification: uuid.UUID) -> None:
        async with translated():
            await self._pool.execute(
                "UPDATE notifications SET status_gave_up_at = now(), status_check_due_at = NULL"  # noqa: S608  # only life-cycle constants are interpolated
                f" WHERE id = $1 AND state = '{State.SENT}'",
                notification,
            )

    async def contact(self, notification: uuid.UUID) -> SealedContact | None:
        async with translated():
            r = await self._pool.fetchrow(
                "SELECT key_id, ciphertext FROM notification_contacts WHERE notification_id = $1",
                notification,
            )
        return None if r is None else SealedContact(notification, r["key_id"], bytes(r["ciphertext"]))

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
        """Apply a provider's report to the attempt it names; False when it is stale or repeated.

        ``fallback_in_s``: the report owes an email fallback; it falls due (for the retry job) in
        that many seconds unless decided before. Written in the same transaction as the report.
        ``lease``: the receipt is born leased to it (see ``finish``).
        """
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(
                "UPDATE notifications SET state = $3, reason = coalesce($4, reason), updated_at = now(),"  # noqa: S608  # only life-cycle constants are interpolated
                f" delivered_at = CASE WHEN $3 = '{State.DELIVERED}' THEN now() ELSE delivered_at END,"
                " fallback_due_at = CASE WHEN $5::float8 IS NULL THEN fallback_due_at"
                " ELSE now() + make_interval(secs => $5::float8) END,"
                " fallback_attempts = CASE WHEN $5::float8 IS NULL THEN fallback_attempts ELSE 1 END"
                f" WHERE id = $1 AND reference = $2 AND state = '{State.SENT}' RETURNING id",
                notification,
                reference,
                state,
                reason,
                fallback_in_s,
            )
            if updated is None:
                return False
            await conn.execute(
                _OUTBOX_INSERT,
                [receipt.receipt_id],
                [receipt.notification_id],
                [receipt.order_id],
                [receipt.payload],
                lease.owner if lease else None,
                lease.seconds if lease else 0.0,
            )
        return True

    async def take_receipts(
        self, lease: Lease, notifications: Sequence[uuid.UUID] | None = None, limit: int = 200
    ) -> list[OutboxRow]:
        """Lease the receipts that may be published now (see the port), in publishing order."""
        if notifications is not None and not notifications:
            return []
        taken: list[asyncpg.Record] = []
        async with translated(), self._pool.acquire() as conn:
            if notifications is None:
                async with conn.transaction():
                    due = [r["notification_id"] for r in await conn.fetch(_OUTBOX_DUE, limit)]
                    if due:
                        taken += await self._take(conn, lease, due)
            else:
                ids = sorted(set(notifications))
                for i in range(0, len(ids), limit):  # bounded locks per transaction
                    async with conn.transaction():
                        taken += await self._take(conn, lease, ids[i : i + limit])
        return _in_order(taken)

    @staticmethod
    async def _take(
        conn: asyncpg.Connection, lease: Lease, notifications: list[uuid.UUID]
    ) -> list[asyncpg.Record]:
        await conn.execute(_OUTBOX_LOCK, _lock_keys(notifications))
        return list(await conn.fetch(_OUTBOX_TAKE, lease.owner, lease.seconds, notifications))

    async def complete_receipts(self, lease: Lease, published: Sequence[OutboxRow]) -> list[OutboxRow]:
        if not published:
            return []
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_OUTBOX_LOCK, _lock_keys(r.notification_id for r in published))
            marked = await conn.fetch(_OUTBOX_MARK, lease.owner, [r.receipt_id for r in published])
            held = sorted({r["notification_id"] for r in marked})
            rows = await conn.fetch(_OUTBOX_SUCCESSORS, lease.owner, lease.seconds, held) if held else []
        return _in_order(rows)

    async def release_receipts(self, lease: Lease, receipt_ids: Sequence[uuid.UUID]) -> None:
        if not receipt_ids:
            return
        async with translated():
            await self._pool.execute(
                "UPDATE receipt_outbox SET lease_owner = NULL, lease_until = NULL"
                " WHERE receipt_id = ANY($2::uuid[]) AND lease_owner = $1 AND published_at IS NULL",
                lease.owner,
                list(receipt_ids),
            )

    async def unpublished_receipts(self, limit: int = 1000) -> list[OutboxRow]:
        async with translated():
            rows = await self._pool.fetch(
                "SELECT receipt_id, notification_id, order_id, payload, seq FROM receipt_outbox"
                " WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                limit,
            )
        return _in_order(rows)

    async def opted_out(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these blind indexes have opted out."""
        if not subjects:
            return set()
        async with translated():
            rows = await self._pool.fetch(
                "SELECT subject FROM opt_outs WHERE subject = ANY($1::bytea[])", list(subjects)
            )
        return {bytes(r["subject"]) for r in rows}

    async def set_consent(self, subjects: Sequence[bytes], *, opted_out: bool, source: str) -> int:
        """Record an opt-out (or an explicit opt-in) for each subject, with its history; returns changes."""
        if not subjects:
            return 0
        action = "opt_out" if opted_out else "opt_in"
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            if opted_out:
                changed = await conn.fetch(
                    "INSERT INTO opt_outs (subject, source) SELECT unnest($1::bytea[]), $2"
                    " ON CONFLICT (subject) DO NOTHING RETURNING subject",
                    list(subjects),
                    source,
                )
            else:
                changed = await conn.fetch(
                    "DELETE FROM opt_outs WHERE subject = ANY($1::bytea[]) RETURNING subject", list(subjects)
                )
            await conn.execute(
                "INSERT INTO consent_events (subject, action, source) SELECT s, $2, $3 FROM unnest($1::bytea[]) s",
                [bytes(r["subject"]) for r in changed],
                action,
                source,
            )
        return len(changed)

    async def by_link(self, link_id: bytes) -> LinkedNotification | None:
        """The notification behind a signed link, with the subjects an unsubscribe applies to."""
        async with translated():
            r = await self._pool.fetchrow(
                "SELECT id, order_id, waybill, phone_subject, email_subject FROM notifications WHERE link_id = $1",
                link_id,
            )
        if r is None:
            return None
        subjects = tuple(bytes(s) for s in (r["phone_subject"], r["email_subject"]) if s is not None)
        return LinkedNotification(r["id"], r["order_id"], r["waybill"], subjects)

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        """What the order's customer was told, milestone by milestone (no personal data)."""
        async with translated():
            rows = await self._pool.fetch(
                "SELECT milestone, state, channel, event_occurred_at, updated_at FROM notifications"
                " WHERE order_id = $1 ORDER BY milestone_rank",
                order_id,
            )
        return [
            TimelineEntry(
                Milestone(r["milestone"]), r["state"], r["channel"], r["event_occurred_at"], r["updated_at"]
            )
            for r in rows
        ]

    async def hold_report(self, reference: str, provider: str, delivered: bool, code: str | None) -> None:
        async with translated():
            await self._pool.execute(
                "INSERT INTO early_reports (reference, provider, delivered, code) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING",
                reference,
                provider,
                delivered,
                code,
            )

    async def take_reports(self, references: Sequence[str]) -> list[HeldReport]:
        """Remove and return the held reports for these references (each is taken once)."""
        if not references:
            return []
        async with translated():
            rows = await self._pool.fetch(
                "DELETE FROM early_reports WHERE reference = ANY($1::text[])"
                " RETURNING reference, provider, delivered, code",
                list(references),
            )
        return [HeldReport(r["reference"], r["provider"], r["delivered"], r["code"]) for r in rows]


def _lock_keys(notifications: Iterable[uuid.UUID]) -> list[int]:
    """The advisory lock keys of these notifications, in the one order every locker takes them."""
    return sorted({int.from_bytes(n.bytes[:4], "big", signed=True) for n in notifications})


def _in_order(rows: Iterable[asyncpg.Record]) -> list[OutboxRow]:
    """Outbox rows in the order they were written (RETURNING promises no order)."""
    return [
        OutboxRow(r["receipt_id"], r["notification_id"], r["order_id"], bytes(r["payload"]))
        for r in sorted(rows, key=lambda r: int(r["seq"]))
    ]


def _target(r: asyncpg.Record) -> DeliveryTarget:
    return DeliveryTarget(
        r["id"],
        Milestone(r["milestone"]),
        State(r["state"]),
        r["channel"],
        r["provider"],
        r["reference"],
        r["order_id"],
        r["waybill"],
        r["event_id"],
        r["event_occurred_at"],
        fallback_attempts=int(r["fallback_attempts"]),
    )
