"""The follow-ups of the pickup notice on PostgreSQL (migration 0022): their scheduled sends are
``scheduled_sends`` rows of their kinds (one per kind and pickup notice, ``slot`` 0: each order's
is due at its own time), taken under the same lease as the quiet-hours releases; what was decided
for each is a ``follow_ups`` row, written with its receipt and the row's next due time in one
transaction, so a restart never sends one twice nor forgets how many reminders went.

Times come from the caller's clock (``now``), never the database's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from service.domain.follow_up_plan import DueFollowUp, FollowUpRef, due_kind
from service.domain.follow_ups import FollowUp
from service.domain.model import notification_id
from service.domain.outcome import Lease, OutboxRow, Outcome
from service.store.base import PostgresBase, translated
from service.store.receipt_outbox import OUTBOX_INSERT
from service.store.scheduled_sends import schedule_id

# Only for a pickup notice there is (its links, its sealed event); an existing row is kept (a
# re-sent ready event does not move a reminder, a second pickup report not the survey).
_SCHEDULE: Final = """
INSERT INTO scheduled_sends (id, kind, notification_id, order_id, due_from, slot)
SELECT t.id, t.kind, t.notification_id, n.order_id, t.due_from, 0
FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[]) AS t(id, kind, notification_id, due_from)
JOIN notifications n ON n.id = t.notification_id
ON CONFLICT (kind, notification_id) DO NOTHING
"""

_TAKE_DUE: Final = """
WITH picked AS (
    SELECT id FROM scheduled_sends
    WHERE kind = ANY($1::text[]) AND due_from <= $2 AND (not_before IS NULL OR not_before <= $2)
    ORDER BY due_from LIMIT $3 FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE scheduled_sends s SET not_before = $2 + make_interval(secs => $4::float8),
        releases = s.releases + 1, first_released_at = coalesce(s.first_released_at, $2)
    FROM picked WHERE s.id = picked.id
    RETURNING s.id, s.kind, s.notification_id, s.releases, s.first_released_at, s.due_from
)
SELECT t.id, t.kind, t.notification_id, t.releases, t.first_released_at, n.order_id, n.waybill,
    n.event_id, n.event_occurred_at, d.ready_at, d.picked_up_at, f.decided, f.last_decided_at
FROM taken t
JOIN notifications n ON n.id = t.notification_id
LEFT JOIN pickup_dwell d ON d.order_id = n.order_id
LEFT JOIN LATERAL (
    SELECT count(*) AS decided, max(decided_at) AS last_decided_at FROM follow_ups
    WHERE notification_id = t.notification_id AND kind = t.kind
) f ON true
ORDER BY t.due_from
"""

_DECIDED: Final = """
INSERT INTO follow_ups (id, kind, number, notification_id, order_id, outcome, channel, provider, reason, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
RETURNING id
"""

_MOVE_ON: Final = """
UPDATE scheduled_sends SET due_from = $2, not_before = NULL, releases = 0, first_released_at = NULL
WHERE id = $1
"""


# When each pickup notice's scheduled follow-ups go (their lease or hold, if later), and which
# number; not a reminder of a bike collected already (its row goes when it comes due).
_PLANNED: Final = f"""
SELECT s.notification_id, s.kind, greatest(s.due_from, coalesce(s.not_before, s.due_from)) AS at,
    1 + (SELECT count(*) FROM follow_ups f WHERE f.notification_id = s.notification_id AND f.kind = s.kind)
        AS number
FROM scheduled_sends s LEFT JOIN pickup_dwell d ON d.order_id = s.order_id
WHERE s.kind = ANY($1::text[]) AND s.notification_id = ANY($2::uuid[])
    AND NOT (s.kind = '{FollowUp.PICKUP_REMINDER.value}' AND d.picked_up_at IS NOT NULL)
ORDER BY at
"""  # noqa: S608  # only a constant is interpolated


class FollowUps(PostgresBase):
    """``follow_ups`` and the follow-ups' ``scheduled_sends`` rows: the ``FollowUpStore`` port."""

    async def schedule_follow_ups(self, due: Sequence[tuple[FollowUp, str, datetime]]) -> int:
        if not due:
            return 0
        notices = [notification_id(order, kind.milestone) for kind, order, _ in due]
        async with translated():
            status = await self._pool.execute(
                _SCHEDULE,
                [schedule_id(due_kind(kind), n) for (kind, _, _), n in zip(due, notices, strict=True)],
                [kind.value for kind, _, _ in due],
                notices,
                [at for _, _, at in due],
            )
        return int(status.rsplit(" ", 1)[-1])

    async def take_due_follow_ups(
        self, kinds: Sequence[FollowUp], *, now: datetime, limit: int, lease_s: float
    ) -> list[DueFollowUp]:
        async with translated():
            rows = await self._pool.fetch(_TAKE_DUE, [k.value for k in kinds], now, limit, lease_s)
        return [
            DueFollowUp(
                r["id"],
                FollowUp(r["kind"]),
                r["notification_id"],
                r["order_id"],
                r["waybill"],
                r["event_id"],
                r["event_occurred_at"],
                int(r["releases"]),
                r["first_released_at"],
                r["ready_at"],
                r["picked_up_at"],
                int(r["decided"] or 0),
                r["last_decided_at"],
            )
            for r in rows
        ]

    async def planned_follow_ups(
        self, notifications: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[FollowUp, int, datetime]]]:
        """The follow-ups scheduled for these pickup notices: (kind, number, when due), soonest first."""
        if not notifications:
            return {}
        async with translated():
            rows = await self._pool.fetch(_PLANNED, [k.value for k in FollowUp], list(notifications))
        planned: dict[uuid.UUID, list[tuple[FollowUp, int, datetime]]] = {}
        for r in rows:
            planned.setdefault(r["notification_id"], []).append(
                (FollowUp(r["kind"]), int(r["number"]), r["at"])
            )
        return planned

    async def record_follow_up(
        self,
        outcome: Outcome,
        ref: FollowUpRef,
        receipt: OutboxRow,
        *,
        schedule_id: uuid.UUID,
        next_due: datetime | None,
        lease: Lease,
    ) -> bool:
        o = outcome
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                _DECIDED,
                ref.follow_up_id,
                ref.kind.value,
                ref.number,
                ref.notification_id,
                o.update.order_id,
                o.outcome,
                o.channel,
                o.provider,
                o.reason,
                o.decided_at,
            )
            if fresh is not None:
                await conn.execute(
                    OUTBOX_INSERT,
                    [receipt.receipt_id],
                    [receipt.notification_id],
                    [receipt.order_id],
                    [receipt.payload],
                    lease.owner,
                    lease.seconds,
                )
            if next_due is None:
                await conn.execute("DELETE FROM scheduled_sends WHERE id = $1", schedule_id)
            else:
                await conn.execute(_MOVE_ON, schedule_id, next_due)
        return fresh is not None
