"""The follow-ups a batch's pickup events put on the schedule (``scheduled_sends``), before the
batch's offsets are committed: a ``ready_for_pickup`` the first pickup reminder (due after N days,
``domain.reminders``), a completed dwell (the bike was collected) the survey link (due its delay
after the pickup). One row per kind and pickup notice: a re-sent event changes nothing. Whether
each still goes when due is the follow-up job's business (``service.pipeline.follow_up_release``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from service.domain.dwell import Dwell, End, PickupTime
from service.domain.follow_ups import FollowUp
from service.domain.ports import FollowUpStore
from service.domain.reminders import ReminderPolicy


class FollowUpSchedule:
    def __init__(
        self, store: FollowUpStore, *, reminders: ReminderPolicy | None, survey_delay: timedelta | None
    ) -> None:
        self._store = store
        self._reminders = reminders if reminders is not None and reminders.max_reminders > 0 else None
        self._survey_delay = survey_delay  # None: no survey configured

    def due(
        self, times: Sequence[PickupTime], dwells: Sequence[Dwell]
    ) -> list[tuple[FollowUp, str, datetime]]:
        """(kind, order, due from) of what these pickup times and completed dwells start. Pure."""
        due: list[tuple[FollowUp, str, datetime]] = []
        if self._reminders is not None:
            ready = {t.order_id: t.at for t in times if t.end == End.READY}
            due += [(FollowUp.PICKUP_REMINDER, o, self._reminders.due_at(at, 1)) for o, at in ready.items()]
        if self._survey_delay is not None:
            due += [(FollowUp.SURVEY, d.order_id, d.picked_up_at + self._survey_delay) for d in dwells]
        return due

    async def schedule(self, times: Sequence[PickupTime], dwells: Sequence[Dwell]) -> int:
        return await self._store.schedule_follow_ups(self.due(times, dwells))
