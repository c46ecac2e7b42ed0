"""Pickups: the dwell ends a batch's events mark (``ready_for_pickup``, ``PICKED_UP``) recorded
in the store before the batch's offsets are committed, and each dwell they complete observed once
in ``notifier_pickup_dwell_seconds``; the follow-ups they start (a reminder, the survey link)
put on the schedule (``service.dedup.follow_up_schedule``). The events notify no one here: ``PICKED_UP`` is recorded
and planned like every status outside the milestones (``service.dedup.claims``)."""

from __future__ import annotations

from collections.abc import Sequence

from service.dedup.follow_up_schedule import FollowUpSchedule
from service.domain.dwell import Dwell, pickup_times
from service.domain.model import InboundRecord, ShipmentUpdate
from service.domain.ports import PickupStore
from service.metrics import Metrics


class PickupTimes:
    def __init__(
        self, store: PickupStore, metrics: Metrics, follow_ups: FollowUpSchedule | None = None
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._follow_ups = follow_ups  # the reminders and survey links these events start; None: none

    async def record(self, parsed: Sequence[tuple[InboundRecord, ShipmentUpdate]]) -> list[Dwell]:
        """Record the batch's dwell ends; returns the dwells completed now (each once: a survey's cue)."""
        times = pickup_times(u for _, u in parsed)
        if not times:
            return []
        completed = await self._store.record_pickup_times(times)
        for dwell in completed:
            self._metrics.observe_dwell(dwell.place, dwell.seconds)
        if self._follow_ups is not None:
            await self._follow_ups.schedule(times, completed)
        return completed
