"""The store's delivery reports on PostgreSQL: the attempt a report names, reports that came before
their send (held), and the jobs' leases: owed email fallbacks and SMS status look-ups.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.outcome import DeliveryTarget, HeldReport, Lease, OutboxRow
from service.domain.status_check import AwaitingStatus
from service.store.base import PostgresBase, translated
from service.store.receipt_outbox import OUTBOX_INSERT

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


class Deliveries(PostgresBase):
    """What happens to a notification after its send: reports, fallbacks, status look-ups."""

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
                OUTBOX_INSERT,
                [receipt.receipt_id],
                [receipt.notification_id],
                [receipt.order_id],
                [receipt.payload],
                lease.owner if lease else None,
                lease.seconds if lease else 0.0,
            )
        return True

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
