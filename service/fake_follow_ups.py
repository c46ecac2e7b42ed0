"""The ``FollowUpStore`` port in memory, over a ``FakeStore`` (its notifications, sealed contacts and
outbox) and a ``FakePickups`` (each order's ready and pickup times), as ``service.store.follow_up_sends``
keeps them on PostgreSQL (``tests/contracts/follow_ups.py`` runs the same tests on both)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.domain.follow_up_plan import DueFollowUp, FollowUpRef, due_kind
from service.domain.follow_ups import FollowUp
from service.domain.model import notification_id
from service.domain.outcome import Lease, OutboxRow, Outcome, SealedContact
from service.fake_store import FakeStore, _Row
from service.store.scheduled_sends import schedule_id


@dataclass
class _Due:
    kind: FollowUp
    notification_id: uuid.UUID
    order_id: str
    due_from: datetime
    not_before: datetime | None = None
    releases: int = 0
    first_released_at: datetime | None = None


@dataclass
class FakeFollowUps:
    store: FakeStore
    pickups: dict[str, dict[str, object]]  # ``FakePickups.rows``: each order's ready and pickup times
    rows: dict[uuid.UUID, _Due] = field(default_factory=dict)  # scheduled_sends of the follow-ups' kinds
    decided: dict[uuid.UUID, tuple[FollowUpRef, Outcome]] = field(default_factory=dict)  # follow_ups

    def _notice(self, nid: uuid.UUID) -> _Row | None:
        return next((r for r in self.store.rows.values() if r.request.notification_id == nid), None)

    def _decided(self, nid: uuid.UUID, kind: FollowUp) -> list[Outcome]:
        return [o for ref, o in self.decided.values() if ref.notification_id == nid and ref.kind == kind]

    async def schedule_follow_ups(self, due: Sequence[tuple[FollowUp, str, datetime]]) -> int:
        self.store._maybe_fail()
        written = 0
        for kind, order, at in due:
            nid = notification_id(order, kind.milestone)
            sid = schedule_id(due_kind(kind), nid)
            if self._notice(nid) is not None and sid not in self.rows:
                self.rows[sid] = _Due(kind, nid, order, at)
                written += 1
        return written

    async def take_due_follow_ups(
        self, kinds: Sequence[FollowUp], *, now: datetime, limit: int, lease_s: float
    ) -> list[DueFollowUp]:
        self.store._maybe_fail()
        due = sorted(
            (
                (sid, r)
                for sid, r in self.rows.items()
                if r.kind in kinds and r.due_from <= now and (r.not_before is None or r.not_before <= now)
            ),
            key=lambda x: x[1].due_from,
        )[:limit]
        taken = []
        for sid, r in due:
            r.not_before = now + timedelta(seconds=lease_s)
            r.releases += 1
            r.first_released_at = r.first_released_at or now
            notice = self._notice(r.notification_id)
            if notice is None:
                continue
            u = notice.request.update
            times = self.pickups.get(r.order_id, {})
            mine = self._decided(r.notification_id, r.kind)
            ready, picked = times.get("ready_at"), times.get("picked_up_at")
            taken.append(
                DueFollowUp(
                    sid,
                    r.kind,
                    r.notification_id,
                    r.order_id,
                    u.waybill,
                    u.event_id,
                    u.occurred_at,
                    r.releases,
                    r.first_released_at,
                    ready if isinstance(ready, datetime) else None,
                    picked if isinstance(picked, datetime) else None,
                    len(mine),
                    max((o.decided_at for o in mine), default=None),
                )
            )
        return taken

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
        self.store._maybe_fail()
        fresh = ref.follow_up_id not in self.decided
        if fresh:
            self.decided[ref.follow_up_id] = (ref, outcome)
            self.store._put_receipt(receipt, lease)
        if next_due is None:
            self.rows.pop(schedule_id, None)
        elif (row := self.rows.get(schedule_id)) is not None:
            row.due_from, row.not_before, row.releases, row.first_released_at = next_due, None, 0, None
        return fresh

    async def planned_follow_ups(
        self, notifications: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[FollowUp, int, datetime]]]:
        planned: dict[uuid.UUID, list[tuple[FollowUp, int, datetime]]] = {}
        for r in sorted(self.rows.values(), key=lambda r: max(r.due_from, r.not_before or r.due_from)):
            collected = self.pickups.get(r.order_id, {}).get("picked_up_at") is not None
            if r.notification_id in notifications and not (r.kind == FollowUp.PICKUP_REMINDER and collected):
                at = max(r.due_from, r.not_before or r.due_from)
                number = 1 + len(self._decided(r.notification_id, r.kind))
                planned.setdefault(r.notification_id, []).append((r.kind, number, at))
        return planned

    async def release_later(
        self, schedule_ids: Sequence[uuid.UUID], *, not_before: datetime, given_back: bool
    ) -> None:
        for sid in schedule_ids:
            if (row := self.rows.get(sid)) is not None:
                row.not_before = not_before
                row.releases = max(row.releases - 1, 0) if given_back else row.releases

    async def drop_scheduled(self, schedule_ids: Sequence[uuid.UUID]) -> None:
        for sid in schedule_ids:
            self.rows.pop(sid, None)

    async def contact(self, notification: uuid.UUID) -> SealedContact | None:
        return await self.store.contact(notification)
