"""The store's customer-facing data on PostgreSQL: sealed contacts, consent (opt-outs with their
history), the notification behind a signed link, and an order's timeline.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from service.domain.consent_snapshot import ConsentRecord
from service.domain.milestones import Milestone
from service.domain.outcome import LinkedNotification, SealedContact, TimelineEntry
from service.store.base import PostgresBase, translated

# Each subject's record: its opt-out, else its latest opt-in (a subject is in at most one of the
# two tables; migration 0018). Two primary keys probed; opt_ins is small.
_CONSENT_RECORDS = """
SELECT subject, true AS opted_out, source, created_at AS set_at FROM opt_outs WHERE subject = ANY($1::bytea[])
UNION ALL
SELECT subject, false, source, created_at FROM opt_ins WHERE subject = ANY($1::bytea[])
"""


class ContactsAndConsent(PostgresBase):
    """``notification_contacts``, ``opt_outs``, ``opt_ins`` and ``consent_events``; links and timelines."""

    async def contact(self, notification: uuid.UUID) -> SealedContact | None:
        async with translated():
            r = await self._pool.fetchrow(
                "SELECT key_id, ciphertext FROM notification_contacts WHERE notification_id = $1",
                notification,
            )
        return None if r is None else SealedContact(notification, r["key_id"], bytes(r["ciphertext"]))

    async def opted_out(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these blind indexes have opted out."""
        if not subjects:
            return set()
        async with translated():
            rows = await self._pool.fetch(
                "SELECT subject FROM opt_outs WHERE subject = ANY($1::bytea[])", list(subjects)
            )
        return {bytes(r["subject"]) for r in rows}

    async def consent_records(self, subjects: Sequence[bytes]) -> dict[bytes, ConsentRecord]:
        """Each subject's opt-out, else its latest opt-in, with source and time: one query for all."""
        if not subjects:
            return {}
        async with translated():
            rows = await self._pool.fetch(_CONSENT_RECORDS, list(dict.fromkeys(subjects)))
        return {
            bytes(r["subject"]): ConsentRecord(bool(r["opted_out"]), r["source"], r["set_at"]) for r in rows
        }

    async def set_consent(
        self, subjects: Sequence[bytes], *, opted_out: bool, source: str, order_id: str | None = None
    ) -> int:
        """Record an opt-out (or an explicit opt-in) for each subject, with its history; returns changes.

        The history's trigger (migration 0018) writes the audit row, naming ``order_id`` when given."""
        if not subjects:
            return 0
        action = "opt_out" if opted_out else "opt_in"
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            if order_id is not None:  # read by the audit trigger, for this transaction only
                await conn.execute("SELECT set_config('notifier.consent_order', $1, true)", order_id)
            if opted_out:
                changed = await conn.fetch(
                    "INSERT INTO opt_outs (subject, source) SELECT unnest($1::bytea[]), $2"
                    " ON CONFLICT (subject) DO NOTHING RETURNING subject",
                    list(subjects),
                    source,
                )
                await conn.execute(
                    "DELETE FROM opt_ins WHERE subject = ANY($1::bytea[])",
                    [bytes(r["subject"]) for r in changed],
                )
            else:
                changed = await conn.fetch(
                    "DELETE FROM opt_outs WHERE subject = ANY($1::bytea[]) RETURNING subject", list(subjects)
                )
                await conn.execute(  # the latest opt-in, for the consent look-up
                    "INSERT INTO opt_ins (subject, source) SELECT unnest($1::bytea[]), $2"
                    " ON CONFLICT (subject) DO UPDATE"
                    " SET source = EXCLUDED.source, created_at = EXCLUDED.created_at",
                    [bytes(r["subject"]) for r in changed],
                    source,
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
