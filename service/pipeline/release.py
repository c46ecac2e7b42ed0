"""The release job: scheduled sends (quiet hours) go out once due, paced, each by one instance.

Every ``interval_s`` a run takes the sends that are due (``ScheduleStore.take_due``: past their
window's end by their slot's share of the release rate, leased with ``FOR UPDATE SKIP LOCKED``, so
two instances never take the same one and a taker that dies gives it up when the lease ends), at
most this instance's share of the rate (``domain.quiet_hours.release_budget``). Then, per taken
send, as one batch:

- decided meanwhile (no longer ``scheduled``): the row is dropped;
- a later milestone of its order exists (``domain.due_sends.superseded``): recorded
  ``suppressed_superseded`` with its receipt, nothing sent;
- else its sealed event is decrypted and it is delivered like any first send (consent looked up
  again, the engine's plan under the group's rate limits), recorded at once with its receipt; a
  re-take (an earlier take never finished) asks the SMS providers first, like a re-claim;
- held (no provider can take it now): due again after ``hold_s``.

A release is recorded before its row is dropped; a crash in between leaves a row whose notification
is no longer ``scheduled``, which the next take drops. Nothing runs while sends are paused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from service.contracts import parse_event
from service.domain import reasons
from service.domain.due_sends import DueKind, DueSend, superseded
from service.domain.errors import NotifierError
from service.domain.lifecycle import HELD_NOTIFICATION, Event, State, decided, transition
from service.domain.model import ShipmentUpdate
from service.domain.outcome import Outcome
from service.domain.ports import ScheduleStore
from service.domain.quiet_hours import release_budget
from service.logs import get_logger
from service.metrics import Metrics
from service.privacy.crypto import Keyring
from service.report.delivery_reports import DeliveryReports
from service.send.sender import Sender

log = get_logger(__name__)


class Release:
    def __init__(
        self,
        *,
        store: ScheduleStore,
        sender: Sender,
        reports: DeliveryReports,
        keyring: Keyring | None,
        metrics: Metrics,
        clock: Callable[[], datetime],
        rate_per_s: float,
        interval_s: float,
        lease_s: float,
        hold_s: float,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._sender = sender
        self._reports = reports
        self._keyring = keyring
        self._metrics = metrics
        self._clock = clock
        self._rate = rate_per_s
        self._interval_s = interval_s
        self._lease_s = lease_s
        self._hold_s = hold_s
        self._paused = paused
        self._share = 1.0

    def set_share(self, share: float) -> None:
        """This instance's share of the group's work (by assigned partitions), as for the sends."""
        self._share = share

    async def run_once(self) -> int:
        """Take the sends due now and settle each; returns how many were taken."""
        if self._paused():
            return 0
        budget = release_budget(self._rate, self._interval_s, self._share)
        due = await self._store.take_due(
            DueKind.NOTIFICATION,
            now=self._clock(),
            limit=budget,
            lease_s=self._lease_s,
            rate_per_s=self._rate,
        )
        if not due:
            return 0
        beaten = superseded(d for d in due if d.state == State.SCHEDULED)
        settled = await asyncio.gather(
            *(self._settle(d, d.notification_id in beaten) for d in due), return_exceptions=True
        )
        failures = [x for x in settled if isinstance(x, BaseException)]
        if failures:
            raise failures[0]
        log.info("scheduled_released", taken=len(due), superseded=len(beaten))
        return len(due)

    async def _settle(self, d: DueSend, beaten: bool) -> None:
        if d.state != State.SCHEDULED:  # decided meanwhile (or recorded by a taker that died after)
            await self._store.drop_scheduled([d.schedule_id])
            return
        if beaten:
            o = self._outcome(d, State.SUPPRESSED_SUPERSEDED, reasons.SUPERSEDED)
            await self._record(o)
        else:
            o = await self._deliver(d)
            if o.outcome == HELD_NOTIFICATION:
                transition(State.SCHEDULED, Event.HOLD)
                await self._store.release_later(
                    [d.schedule_id],
                    not_before=self._clock() + timedelta(seconds=self._hold_s),
                    given_back=not o.maybe_sent,
                )
                self._metrics.scheduled_releases.labels(HELD_NOTIFICATION).inc()
                return
            if o.outcome != State.SENT:  # a send was recorded as it went (before its slot was freed)
                await self._record(o)
        await self._store.drop_scheduled([d.schedule_id])
        self._metrics.scheduled_releases.labels(o.outcome).inc()

    async def _deliver(self, d: DueSend) -> Outcome:
        sealed = await self._store.contact(d.notification_id)
        if sealed is None or self._keyring is None:
            return self._outcome(d, State.FAILED, reasons.NO_SEALED_EVENT)
        try:
            update = parse_event(
                self._keyring.decrypt(sealed.key_id, sealed.ciphertext, d.notification_id.bytes)
            )
        except NotifierError as exc:
            log.error("release_impossible", notification_id=str(d.notification_id), why=type(exc).__name__)
            return self._outcome(d, State.FAILED, reasons.NO_SEALED_EVENT)
        if d.retaken:
            transition(State.SCHEDULED, Event.RECLAIM)  # an earlier take never finished: maybe sent

        async def record_send(o: Outcome) -> None:
            await self._record(o)

        return await self._sender.deliver(
            d.notification_id,
            update,
            d.milestone,
            reconcile_since=d.first_released_at if d.retaken else None,
            abort=asyncio.Event(),
            record=record_send,
        )

    async def _record(self, o: Outcome) -> None:
        transition(State.SCHEDULED, decided(o.outcome, o.channel))  # an illegal outcome raises here
        await self._reports.record([o])
        self._metrics.decisions.labels(o.outcome).inc()

    def _outcome(self, d: DueSend, state: State, reason: str) -> Outcome:
        return Outcome(
            d.notification_id,
            ShipmentUpdate.for_receipt(
                event_id=d.event_id, order_id=d.order_id, waybill=d.waybill, occurred_at=d.occurred_at
            ),
            d.milestone,
            state,
            "none",
            self._clock(),
            reason=reason,
        )
