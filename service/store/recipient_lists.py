"""The recipient lists on PostgreSQL (migration 0017), by blind index only: the pilot's allow-list
with its history, and the numbers marked undeliverable with their undelivered streaks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from service.domain.screening import NumberMark, NumberReport
from service.store.base import PostgresBase, translated


class RecipientLists(PostgresBase):
    """``pilot_recipients`` / ``pilot_events`` and ``phone_health``."""

    async def pilot_listed(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these blind indexes are on the pilot's allow-list."""
        if not subjects:
            return set()
        async with translated():
            rows = await self._pool.fetch(
                "SELECT subject FROM pilot_recipients WHERE subject = ANY($1::bytea[])", list(subjects)
            )
        return {bytes(r["subject"]) for r in rows}

    async def set_pilot(self, subject: bytes, kind: str, *, listed: bool, source: str) -> bool:
        """Put a contact (``kind``: phone or email) on the allow-list or take it off, with its
        history; False when it was so already."""
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            if listed:
                changed = await conn.fetchval(
                    "INSERT INTO pilot_recipients (subject, kind, added_by) VALUES ($1, $2, $3)"
                    " ON CONFLICT (subject) DO NOTHING RETURNING true",
                    subject,
                    kind,
                    source,
                )
            else:
                changed = await conn.fetchval(
                    "DELETE FROM pilot_recipients WHERE subject = $1 RETURNING true", subject
                )
            if changed:
                await conn.execute(
                    "INSERT INTO pilot_events (subject, action, source) VALUES ($1, $2, $3)",
                    subject,
                    "add" if listed else "remove",
                    source,
                )
        return bool(changed)

    async def pilot_size(self) -> dict[str, int]:
        """How many phones and emails the allow-list holds."""
        async with translated():
            rows = await self._pool.fetch("SELECT kind, count(*) AS n FROM pilot_recipients GROUP BY kind")
        return {"phone": 0, "email": 0} | {r["kind"]: int(r["n"]) for r in rows}

    async def marked_numbers(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these phones' blind indexes are marked undeliverable."""
        if not subjects:
            return set()
        async with translated():
            rows = await self._pool.fetch(
                "SELECT subject FROM phone_health WHERE subject = ANY($1::bytea[]) AND marked_at IS NOT NULL",
                list(subjects),
            )
        return {bytes(r["subject"]) for r in rows}

    async def mark_number(self, subject: bytes, reason: str) -> bool:
        """Mark a number undeliverable; False when it was marked already (its first mark stays)."""
        async with translated():
            marked = await self._pool.fetchval(
                "INSERT INTO phone_health (subject, marked_at, reason) VALUES ($1, now(), $2)"
                " ON CONFLICT (subject) DO UPDATE SET marked_at = now(), reason = $2, updated_at = now()"
                " WHERE phone_health.marked_at IS NULL RETURNING true",
                subject,
                reason,
            )
        return bool(marked)

    async def unmark_number(self, subject: bytes) -> bool:
        """An operator's word that the number works again: its mark and streak go; False: not marked."""
        async with translated():
            gone = await self._pool.fetchval(
                "DELETE FROM phone_health WHERE subject = $1 AND marked_at IS NOT NULL RETURNING true",
                subject,
            )
        return bool(gone)

    async def number_report(self, notification: uuid.UUID, *, delivered: bool) -> NumberReport | None:
        """Count a delivery report of an SMS against the notification's number: an undelivered one
        lengthens its streak, a delivered one ends it (and writes nothing for a number with no
        streak: only numbers that failed are kept). None: no row (no number, erased, no streak)."""
        if delivered:
            sql = (
                "UPDATE phone_health h SET undelivered = 0, updated_at = now() FROM notifications n"
                " WHERE n.id = $1 AND h.subject = n.phone_subject AND h.undelivered > 0"
                " RETURNING h.subject, h.undelivered, h.marked_at IS NOT NULL AS marked"
            )
        else:
            sql = (
                "INSERT INTO phone_health AS h (subject, undelivered)"
                " SELECT phone_subject, 1 FROM notifications WHERE id = $1 AND phone_subject IS NOT NULL"
                " ON CONFLICT (subject) DO UPDATE SET undelivered = h.undelivered + 1, updated_at = now()"
                " RETURNING subject, undelivered, marked_at IS NOT NULL AS marked"
            )
        async with translated():
            r = await self._pool.fetchrow(sql, notification)
        return None if r is None else NumberReport(bytes(r["subject"]), r["undelivered"], r["marked"])

    async def number_marks(self, subjects: Sequence[bytes]) -> dict[bytes, NumberMark]:
        """The marks of these numbers (support's look-up)."""
        if not subjects:
            return {}
        async with translated():
            rows = await self._pool.fetch(
                "SELECT subject, marked_at, reason FROM phone_health"
                " WHERE subject = ANY($1::bytea[]) AND marked_at IS NOT NULL",
                list(subjects),
            )
        return {bytes(r["subject"]): NumberMark(r["marked_at"], r["reason"]) for r in rows}
