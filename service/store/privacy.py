"""Destruction of personal data (retention, erasure) and key rotation, on PostgreSQL.

Personal data in this database is only ever: the sealed (encrypted) event behind a
notification (``notification_contacts``) and the blind indexes of its recipient
(``notifications.phone_subject/email_subject``). Destroying it leaves the delivery history
(milestones, channels, providers, states, times) for metrics and support. Every run writes a
``destruction_log`` row with counts and the time range, never the data.

Every destruction can be previewed (``dry_run=True``): the same statement runs in a transaction
that is rolled back, so the counts are exactly what would go and nothing changes.

A destroyed notification's unsubscribe link keeps working: its blind indexes move to
``erased_links``, keyed by the link id alone (the notification's own link id is cleared), so an
unsubscribe after an erasure still records the opt-out; the retention job deletes them once no
such link can still be valid.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from service.domain.lifecycle import State
from service.privacy.crypto import Keyring
from service.store.postgres import translated

# The notifications whose personal data goes: a CTE filled in per use.
_DESTROY = """
WITH target AS ({select}),
kept AS (
    INSERT INTO erased_links (link_id, subjects, last_issued)
    SELECT n.link_id, array_remove(ARRAY[n.phone_subject, n.email_subject], NULL), greatest(n.created_at, n.updated_at)
    FROM notifications n JOIN target t ON n.id = t.id
    WHERE n.link_id IS NOT NULL AND (n.phone_subject IS NOT NULL OR n.email_subject IS NOT NULL)
    ON CONFLICT (link_id) DO NOTHING
    RETURNING link_id
),
gone AS (
    DELETE FROM notification_contacts c USING target t WHERE c.notification_id = t.id RETURNING c.notification_id
),
cleared AS (
    UPDATE notifications n SET phone_subject = NULL, email_subject = NULL, link_id = NULL, updated_at = now()
    FROM target t
    WHERE n.id = t.id AND (n.phone_subject IS NOT NULL OR n.email_subject IS NOT NULL OR n.link_id IS NOT NULL)
    RETURNING n.id
),
logged AS (
    INSERT INTO destruction_log (kind, scope, contacts, subjects, oldest, newest)
    SELECT $1, $2, (SELECT count(*) FROM gone), (SELECT count(*) FROM cleared),
           (SELECT min(created_at) FROM target), (SELECT max(created_at) FROM target)
    RETURNING contacts, subjects, oldest, newest
)
SELECT logged.*, (SELECT count(*) FROM target) AS matched, (SELECT count(*) FROM kept) AS links FROM logged
"""

# Orders whose last milestone is older than the retention period and that are no longer in flight:
# an order with a send unfinished (claimed: a re-read sends it) or an email fallback owed still
# needs its sealed event, whatever its age.
_EXPIRED = f"""
SELECT n.id, n.created_at FROM notifications n
WHERE n.order_id IN (
    SELECT order_id FROM notifications GROUP BY order_id
    HAVING max(updated_at) < now() - $3::interval AND bool_and(state <> '{State.CLAIMED}' AND fallback_due_at IS NULL)
)
"""  # noqa: S608  # only life-cycle constants are interpolated

# Orders by order number or waybill: the same rule as the support look-up.
_BY_ORDER = (
    "SELECT id, created_at FROM notifications WHERE order_id IN"
    " (SELECT order_id FROM notifications WHERE order_id = $3 OR waybill = $3)"
)
_BY_WAYBILL = (
    "SELECT id, created_at FROM notifications WHERE order_id IN"
    " (SELECT order_id FROM notifications WHERE waybill = $3)"
)


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
    matched: int = 0  # notifications selected (0: no such order, phone or email)
    links: int = 0  # unsubscribe links kept working (their blind indexes moved to erased_links)


class PrivacyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _destroy(self, select: str, kind: str, scope: str, *args: object, dry_run: bool) -> Destruction:
        async with translated(), self._pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                r = await conn.fetchrow(_DESTROY.format(select=select), kind, scope, *args)
            except BaseException:
                await tx.rollback()
                raise
            await (tx.rollback() if dry_run else tx.commit())
        return Destruction(
            int(r["contacts"]),
            int(r["subjects"]),
            r["oldest"],
            r["newest"],
            int(r["matched"]),
            int(r["links"]),
        )

    async def purge(self, retention_days: int, *, link_ttl_days: int, dry_run: bool = False) -> Destruction:
        """Destroy the personal data of orders idle for longer than the retention period (never of an
        order in flight), and the kept blind indexes of unsubscribe links that have expired."""
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        d = await self._destroy(
            _EXPIRED,
            "retention",
            f"orders idle for more than {retention_days} days",
            timedelta(days=retention_days),
            dry_run=dry_run,
        )
        if not dry_run:  # a token is valid up to the end of its expiry day: one day of margin
            async with translated():
                await self._pool.execute(
                    "DELETE FROM erased_links WHERE last_issued < now() - $1::interval",
                    timedelta(days=link_ttl_days + 1),
                )
                # a number's undelivered streak that never marked it is forgotten with its orders
                # (a mark stays, like an opt-out, until `notifier numbers unmark`)
                await self._pool.execute(
                    "DELETE FROM phone_health WHERE marked_at IS NULL AND updated_at < now() - $1::interval",
                    timedelta(days=retention_days),
                )
        return d

    async def erase_order(self, order: str, *, dry_run: bool = False) -> Destruction:
        """Erase one order's personal data; ``order`` is its order number or its waybill."""
        return await self._destroy(_BY_ORDER, "erasure", "order", order, dry_run=dry_run)

    async def erase_waybill(self, waybill: str, *, dry_run: bool = False) -> Destruction:
        return await self._destroy(_BY_WAYBILL, "erasure", "waybill", waybill, dry_run=dry_run)

    async def erase_subject(self, subject: bytes, kind: str, *, dry_run: bool = False) -> Destruction:
        """Erase the orders notified to one phone or email (by its blind index), and what is kept of
        the contact itself: its place on the pilot's allow-list and a number's health (streak,
        mark). Its opt-out stays: it must go on being honoured."""
        d = await self._destroy(_BY_SUBJECT[kind], "erasure", kind, subject, dry_run=dry_run)
        if not dry_run:
            async with translated():
                await self._pool.execute("DELETE FROM pilot_recipients WHERE subject = $1", subject)
                await self._pool.execute("DELETE FROM phone_health WHERE subject = $1", subject)
        return d

    async def erased_link(self, link_id: bytes) -> tuple[bytes, ...] | None:
        """The blind indexes an unsubscribe by this link applies to, once its notification was erased."""
        async with translated():
            subjects = await self._pool.fetchval(
                "SELECT subjects FROM erased_links WHERE link_id = $1", link_id
            )
        return None if subjects is None else tuple(bytes(s) for s in subjects)

    async def to_rotate(self, active_key: str) -> int:
        """How many sealed events are not under the active key (what ``rotate`` would re-encrypt)."""
        async with translated():
            return int(
                await self._pool.fetchval(
                    "SELECT count(*) FROM notification_contacts WHERE key_id <> $1", active_key
                )
            )

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
