"""The store's scheduled sends on PostgreSQL (migration 0019): written with a ``scheduled`` outcome
in ``finish``'s transaction, taken by the release job under a lease (``FOR UPDATE SKIP LOCKED``: two
instances never take the same row), dropped once the release is recorded.

Times come from the caller's clock (``now``), never the database's, so the tests drive quiet hours
with an injected clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from service.domain.due_sends import DueKind, DueSend
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.outcome import Outcome
from service.domain.quiet_hours import release_times
from service.store.base import PostgresBase, translated

_TAKE_SLOTS = """
INSERT INTO release_slots (kind, due_from, taken) VALUES ($1, $2, $3)
ON CONFLICT (kind, due_from) DO UPDATE SET taken = release_slots.taken + EXCLUDED.taken
RETURNING taken
"""

_SCHEDULE = """
INSERT INTO scheduled_sends (id, kind, notification_id, order_id, due_from, slot)
SELECT id, $2, notification_id, order_id, $5, slot
FROM unnest($1::uuid[], $3::uuid[], $4::text[], $6::bigint[]) AS t(id, notification_id, order_id, slot)
ON CONFLICT (kind, notification_id) DO NOTHING
"""

# Due: past its window's end by its slot's share of the pace, and not leased (or held) now. With
# each, the highest milestone rank of its order that is or will be sent (coalescing): a later
# milestone that failed or was suppressed supersedes nothing, so the customer still hears.
_SENDING = ", ".join(
    f"'{s}'" for s in (State.CLAIMED, State.SCHEDULED, State.SENT, State.DELIVERED, State.UNDELIVERED)
)
_TAKE_DUE = f"""
WITH picked AS (
    SELECT id FROM scheduled_sends
    WHERE kind = $1 AND due_from <= $2
        AND due_from + make_interval(secs => slot / $5::float8) <= $2
        AND (not_before IS NULL OR not_before <= $2)
    ORDER BY due_from, slot LIMIT $3 FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE scheduled_sends s SET not_before = $2 + make_interval(secs => $4::float8),
        releases = s.releases + 1, first_released_at = coalesce(s.first_released_at, $2)
    FROM picked WHERE s.id = picked.id
    RETURNING s.id, s.notification_id, s.releases, s.first_released_at
)
SELECT t.id, t.notification_id, t.releases, t.first_released_at, n.order_id, n.waybill, n.event_id,
    n.event_occurred_at, n.milestone, n.state,
    (SELECT max(m.milestone_rank) FROM notifications m
     WHERE m.order_id = n.order_id AND m.state IN ({_SENDING})) AS latest_rank
FROM taken t JOIN notifications n ON n.id = t.notification_id
ORDER BY n.order_id, n.milestone_rank
"""  # noqa: S608  # only life-cycle constants are interpolated

_PLANNED = """
SELECT notification_id, due_from, slot, not_before
FROM scheduled_sends WHERE kind = $1 AND notification_id = ANY($2::uuid[])
"""


def schedule_id(kind: DueKind, notification: uuid.UUID) -> uuid.UUID:
    """A scheduled send's id: one per (kind, notification), the same however often it is written."""
    return uuid.uuid5(notification, kind.value)


async def schedule_in(conn: asyncpg.Connection, outcomes: Sequence[Outcome]) -> None:
    """Write the scheduled sends of ``scheduled`` outcomes, in the caller's transaction: each gets
    the next slot of its window's end (in this order), so releases are paced from there."""
    kind = DueKind.NOTIFICATION
    by_end: dict[datetime, list[Outcome]] = {}
    for o in outcomes:
        if o.outcome == State.SCHEDULED and o.scheduled_for is not None:
            by_end.setdefault(o.scheduled_for, []).append(o)
    for end, group in sorted(by_end.items()):
        taken = int(await conn.fetchval(_TAKE_SLOTS, kind.value, end, len(group)))
        first = taken - len(group)
        await conn.execute(
            _SCHEDULE,
            [schedule_id(kind, o.notification_id) for o in group],
            kind.value,
            [o.notification_id for o in group],
            [o.update.order_id for o in group],
            end,
            list(range(first, taken)),
        )


class ScheduledSends(PostgresBase):
    """``scheduled_sends``: the release job's side."""

    async def take_due(
        self, kind: DueKind, *, now: datetime, limit: int, lease_s: float, rate_per_s: float
    ) -> list[DueSend]:
        """Up to ``limit`` sends due by ``now`` (paced at ``rate_per_s`` from their window's end),
        earliest first, each leased to the caller for ``lease_s``."""
        async with translated():
            rows = await self._pool.fetch(_TAKE_DUE, kind.value, now, limit, lease_s, rate_per_s)
        return [
            DueSend(
                r["id"],
                r["notification_id"],
                r["order_id"],
                r["waybill"],
                r["event_id"],
                r["event_occurred_at"],
                Milestone(r["milestone"]),
                State(r["state"]),
                int(r["releases"]),
                r["first_released_at"],
                int(r["latest_rank"] or 0),
            )
            for r in rows
        ]

    async def release_later(
        self, schedule_ids: Sequence[uuid.UUID], *, not_before: datetime, given_back: bool
    ) -> None:
        """Held (no provider could take them now): due again from ``not_before``; ``given_back``:
        nothing can have gone out, so the take is not counted (the next is not a re-take)."""
        if schedule_ids:
            async with translated():
                await self._pool.execute(
                    "UPDATE scheduled_sends SET not_before = $2,"
                    " releases = CASE WHEN $3 THEN greatest(releases - 1, 0) ELSE releases END"
                    " WHERE id = ANY($1::uuid[])",
                    list(schedule_ids),
                    not_before,
                    given_back,
                )

    async def drop_scheduled(self, schedule_ids: Sequence[uuid.UUID]) -> None:
        """Released and recorded (or decided otherwise meanwhile): no longer due."""
        if schedule_ids:
            async with translated():
                await self._pool.execute(
                    "DELETE FROM scheduled_sends WHERE id = ANY($1::uuid[])", list(schedule_ids)
                )

    async def scheduled_backlog(self, *, now: datetime) -> tuple[int, float]:
        """Sends scheduled and not yet released, and how long past its window's end the oldest
        waits (0 when none is due): a release job that is stuck shows here."""
        async with translated():
            row = await self._pool.fetchrow(
                "SELECT count(*) AS n,"
                " coalesce(extract(epoch FROM $1 - min(due_from) FILTER (WHERE due_from <= $1)), 0) AS late"
                " FROM scheduled_sends WHERE kind = $2",  # follow-ups are due days ahead: not a backlog
                now,
                DueKind.NOTIFICATION.value,
            )
        return int(row["n"]), float(row["late"])

    async def planned_releases(
        self, notifications: Sequence[uuid.UUID], *, rate_per_s: float
    ) -> dict[uuid.UUID, datetime]:
        """When each of these scheduled notifications is planned to go (its paced release time)."""
        if not notifications:
            return {}
        async with translated():
            rows = await self._pool.fetch(_PLANNED, DueKind.NOTIFICATION.value, list(notifications))
        planned = {}
        for r in rows:
            at = release_times(r["due_from"], int(r["slot"]), 1, rate_per_s)[0]
            planned[r["notification_id"]] = max(at, r["not_before"]) if r["not_before"] else at
        return planned
