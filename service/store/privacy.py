"""Destruction of personal data (retention, erasure) and key rotation, on PostgreSQL.

Personal data in this database is only ever: the sealed (encrypted) event behind a
notification (``notification_contacts``) and the blind indexes of its recipient
(``notifications.phone_subject/email_subject``). Destroying it leaves the delivery history
(milestones, channels, providers, states, times) for metrics and support. Every run writes a
``destruction_log`` row with counts and the time range, never the data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from service.privacy.crypto import Keyring
from service.store.postgres import translated

# The notifications whose personal data goes: a CTE filled in per use.
_DESTROY = """
WITH target AS ({select}),
gone AS (
    DELETE FROM notification_contacts c USING target t WHERE c.notification_id = t.id RETURNING c.notification_id
),
cleared AS (
    UPDATE notifications n SET phone_subject = NULL, email_subject = NULL, updated_at = now()
    FROM target t WHERE n.id = t.id AND (n.phone_subject IS NOT NULL OR n.email_subject IS NOT NULL)
    RETURNING n.id
),
logged AS (
    INSERT INTO destruction_log (kind, scope, contacts, subjects, oldest, newest)
    SELECT $1, $2, (SELECT count(*) FROM gone), (SELECT count(*) FROM cleared),
           (SELECT min(created_at) FROM target), (SELECT max(created_at) FROM target)
    RETURNING contacts, subjects, oldest, newest
)
SELECT * FROM logged
"""

# Orders whose last milestone is older than the retention period.
_EXPIRED = """
SELECT n.id, n.created_at FROM notifications n
WHERE n.order_id IN (SELECT order_id FROM notifications GROUP BY order_id HAVING max(updated_at) < now() - $3::interval)
"""


_BY_SUBJECT = {
    "phone": "SELECT id, created_at FROM notifications WHERE order_id IN"
    " (SELECT order_id FROM notifications WHERE phone_subject = $3)",
    "email": "SELECT id, created_at FROM notifications WHERE order_id IN"
    " (SELECT order_id FROM notifications WHERE email_subject = $3)",
}


@dataclass(frozen=True, slots=True)
class Destruction:
    contacts: int
    subjects: int
    oldest: datetime | None
    newest: datetime | None


class PrivacyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _destroy(self, select: str, kind: str, scope: str, *args: object) -> Destruction:
        async with translated():
            r = await self._pool.fetchrow(_DESTROY.format(select=select), kind, scope, *args)
        return Destruction(int(r["contacts"]), int(r["subjects"]), r["oldest"], r["newest"])

    async def purge(self, retention_days: int) -> Destruction:
        """Destroy the personal data of orders whose last milestone is older than the retention period."""
        return await self._destroy(
            _EXPIRED,
            "retention",
            f"orders idle for more than {retention_days} days",
            timedelta(days=retention_days),
        )

    async def erase_order(self, order_id: str) -> Destruction:
        return await self._destroy(
            "SELECT id, created_at FROM notifications WHERE order_id = $3", "erasure", "order", order_id
        )

    async def erase_subject(self, subject: bytes, kind: str) -> Destruction:
        """Erase the orders notified to one phone or email (by its blind index)."""
        return await self._destroy(_BY_SUBJECT[kind], "erasure", kind, subject)

    async def rotate(self, keyring: Keyring, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-encrypt every sealed event not under the active key; returns how many were re-encrypted."""
        async with translated():
            total = await self._pool.fetchval(
                "SELECT count(*) FROM notification_contacts WHERE key_id <> $1", keyring.active
            )
            done = 0
            while True:
                rows = await self._pool.fetch(
                    "SELECT notification_id, key_id, ciphertext FROM notification_contacts"
                    " WHERE key_id <> $1 LIMIT 500",
                    keyring.active,
                )
                if not rows:
                    return done
                ids, keys, blobs = [], [], []
                for r in rows:
                    nid: uuid.UUID = r["notification_id"]
                    plain = keyring.decrypt(r["key_id"], bytes(r["ciphertext"]), nid.bytes)
                    key_id, blob = keyring.encrypt(plain, nid.bytes)
                    ids.append(nid)
                    keys.append(key_id)
                    blobs.append(blob)
                await self._pool.execute(
                    "UPDATE notification_contacts c SET key_id = u.k, ciphertext = u.b"
                    " FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS u(id, k, b) WHERE c.notification_id = u.id",
                    ids,
                    keys,
                    blobs,
                )
                done += len(rows)
                if progress:
                    progress(done, total)
