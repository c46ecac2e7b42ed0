"""The store's receipt outbox on PostgreSQL: receipts born leased to their writer, taken and
published in the order written, one notification at a time (see the port's ``take_receipts``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import asyncpg

from service.domain.outcome import Lease, OutboxRow
from service.store.base import PostgresBase, translated

# A receipt is born leased to its writer ($5; NULL: free), so no one else publishes it meanwhile.
OUTBOX_INSERT = """
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


class ReceiptOutbox(PostgresBase):
    """``receipt_outbox``: leases, publishing order, the rows left for the relay."""

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

    async def outbox_backlog(self) -> tuple[int, float]:
        """Receipts not yet published, and the age in seconds of the oldest (0 when none waits)."""
        async with translated():
            row = await self._pool.fetchrow(
                "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest"
                " FROM receipt_outbox WHERE published_at IS NULL"
            )
        return int(row["n"]), float(row["oldest"])


def _lock_keys(notifications: Iterable[uuid.UUID]) -> list[int]:
    """The advisory lock keys of these notifications, in the one order every locker takes them."""
    return sorted({int.from_bytes(n.bytes[:4], "big", signed=True) for n in notifications})


def _in_order(rows: Iterable[asyncpg.Record]) -> list[OutboxRow]:
    """Outbox rows in the order they were written (RETURNING promises no order)."""
    return [
        OutboxRow(r["receipt_id"], r["notification_id"], r["order_id"], bytes(r["payload"]))
        for r in sorted(rows, key=lambda r: int(r["seq"]))
    ]
