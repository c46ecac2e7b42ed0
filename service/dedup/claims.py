"""Dedup: a batch's events are recorded (their place in the input, which the stale rule reads),
planned (``service.domain.plan``: not a milestone / duplicate / stale / candidate) and claimed in
the store, so each (order, milestone) is notified once across instances and restarts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from service.domain.lifecycle import State
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone, milestone_for
from service.domain.model import InboundRecord, ShipmentUpdate, notification_id
from service.domain.outcome import Claimed, ClaimRequest
from service.domain.plan import Verdict, milestone_orders, plan_batch
from service.domain.ports import NotificationStore
from service.metrics import Metrics
from service.privacy.subjects import RecipientSubjects


@dataclass(frozen=True, slots=True)
class Claims:
    """What this batch may decide: the claims the store granted (new milestones, and stale ones to
    record as suppressed), in input order."""

    work: list[ClaimRequest]
    granted: dict[uuid.UUID, Claimed]


class Dedup:
    def __init__(
        self,
        store: NotificationStore,
        subjects: RecipientSubjects,
        metrics: Metrics,
        links: LinkSigner | None = None,
    ) -> None:
        self._store = store
        self._subjects = subjects
        self._metrics = metrics
        self._links = links

    async def claim(self, parsed: Sequence[tuple[InboundRecord, ShipmentUpdate]]) -> Claims:
        updates = [u for _, u in parsed]
        # Recorded first: each event's place in the input, which the stale rule reads, is fixed
        # before anything of this batch is decided, and kept if the batch is read again.
        reached = [milestone_for(u.tms_status) for u in updates]
        await self._store.record_events(
            [(rec, u, ms.value if ms else None) for (rec, u), ms in zip(parsed, reached, strict=True)]
        )
        orders = sorted(milestone_orders(updates))
        plans = plan_batch(
            updates,
            await self._store.first_reads(orders),
            collected=await self._store.first_collections(orders),
        )
        requests = [
            self._request(
                p.update,
                p.milestone,
                State.CLAIMED if p.verdict is Verdict.CANDIDATE else State.SUPPRESSED_STALE,
            )
            for p in plans
            if p.milestone is not None and p.verdict in (Verdict.CANDIDATE, Verdict.STALE)
        ]
        granted = {c.notification_id: c for c in await self._store.claim(requests)}
        work = [r for r in requests if r.notification_id in granted]

        m = self._metrics
        ignored = sum(p.verdict is Verdict.NOT_A_MILESTONE for p in plans)
        stale = sum(r.state == State.SUPPRESSED_STALE for r in work)
        m.events.labels("not_a_milestone").inc(ignored)
        m.events.labels("duplicate").inc(len(parsed) - ignored - len(work))
        m.events.labels("stale").inc(stale)
        m.events.labels("new_milestone").inc(len(work) - stale)
        return Claims(work, granted)

    def _request(self, update: ShipmentUpdate, milestone: Milestone, state: State) -> ClaimRequest:
        nid = notification_id(update.order_id, milestone)
        phone, email = self._subjects.of(update)
        link = self._links.link_id(nid) if self._links else None
        return ClaimRequest(nid, update, milestone, state, link, phone, email)
