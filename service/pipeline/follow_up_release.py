"""The follow-up job: pickup reminders and survey links go out once due, each by one instance.

In the style of the quiet-hours release job (``service.pipeline.release``), on the same schedule
(``scheduled_sends``, rows of the follow-ups' kinds: ``service.store.follow_up_sends``). Every
``interval_s`` a run takes the follow-ups that are due (leased with ``FOR UPDATE SKIP LOCKED``, so
two instances never take the same one), at most this instance's share of the release rate, and
settles each (``domain.follow_up_plan``):

- not due after all (the bike was picked up meanwhile, the most reminders went, a survey was sent
  or is no longer configured): the row is dropped, nothing sent, no receipt (counted);
- not yet (the next reminder's time, the end of quiet hours): due again then;
- due: the pickup notice's sealed event is decrypted (none any more: dropped, counted) and the
  follow-up is delivered like any send (consent looked up again, the engine's plan under the
  group's rate limits), rendered from its own templates (a reminder says how long the bike has
  waited; the survey carries its signed link), and recorded with its receipt and the row's next
  due time (the next reminder; none after the survey) in one transaction, once per follow-up; a
  re-take (an earlier take never finished) asks the SMS providers first.

After a reminder that did not go (opted out, no valid recipient, failed) no further one is sent.
Nothing runs while sends are paused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from service.compose.message import FollowUpText
from service.contracts import parse_event
from service.domain.errors import NotifierError
from service.domain.follow_up_plan import (
    DueFollowUp,
    FollowUpRef,
    Plan,
    Step,
    next_reminder_at,
    plan_reminder,
    plan_survey,
)
from service.domain.follow_ups import FollowUp, follow_up_id
from service.domain.lifecycle import HELD_NOTIFICATION, RECEIPT_OUTCOMES, State
from service.domain.model import ShipmentUpdate
from service.domain.outcome import Outcome
from service.domain.ports import FollowUpStore
from service.domain.quiet_hours import QuietHours, release_budget
from service.domain.reminders import ReminderPolicy
from service.domain.survey import SurveySigner
from service.logs import get_logger
from service.metrics import Metrics
from service.privacy.crypto import Keyring
from service.report.receipts import Receipts, receipt_row
from service.send.sender import Sender

log = get_logger(__name__)

#: A follow-up dropped because the pickup notice's sealed event is gone (purged, erased, never kept).
NO_CONTACT = "no_contact"
KINDS = (FollowUp.PICKUP_REMINDER, FollowUp.SURVEY)


class FollowUpRelease:
    def __init__(
        self,
        *,
        store: FollowUpStore,
        sender: Sender,
        receipts: Receipts,
        keyring: Keyring | None,
        metrics: Metrics,
        clock: Callable[[], datetime],
        policy: ReminderPolicy,
        survey: SurveySigner | None,
        survey_channel: Literal["sms", "email"],
        quiet: QuietHours | None,
        rate_per_s: float,
        interval_s: float,
        lease_s: float,
        hold_s: float,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._sender = sender
        self._receipts = receipts
        self._keyring = keyring
        self._metrics = metrics
        self._clock = clock
        self._policy = policy
        self._survey = survey
        self._survey_channel = survey_channel
        self._quiet = quiet
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
        """Take the follow-ups due now and settle each; returns how many were taken."""
        if self._paused():
            return 0
        due = await self._store.take_due_follow_ups(
            KINDS,
            now=self._clock(),
            limit=release_budget(self._rate, self._interval_s, self._share),
            lease_s=self._lease_s,
        )
        if not due:
            return 0
        settled = await asyncio.gather(*(self._settle(d) for d in due), return_exceptions=True)
        failures = [x for x in settled if isinstance(x, BaseException)]
        if failures:
            raise failures[0]
        log.info("follow_ups_released", taken=len(due))
        return len(due)

    def _plan(self, d: DueFollowUp, now: datetime) -> Plan:
        if d.kind == FollowUp.PICKUP_REMINDER:
            return plan_reminder(d, self._policy, self._quiet, now)
        return plan_survey(d, enabled=self._survey is not None, quiet=self._quiet, now=now)

    async def _settle(self, d: DueFollowUp) -> None:
        now = self._clock()
        plan = self._plan(d, now)
        if plan.step == Step.LATER and plan.at is not None:
            await self._store.release_later([d.schedule_id], not_before=plan.at, given_back=True)
            return
        if plan.step == Step.DROP or plan.number is None:
            await self._drop(d, plan.why or "dropped")
            return
        update = await self._unsealed(d)
        if update is None:
            await self._drop(d, NO_CONTACT)
            return
        ref = FollowUpRef(
            d.kind, plan.number, follow_up_id(d.order_id, d.kind, plan.number), d.notification_id
        )
        next_due = (
            next_reminder_at(self._policy, ready_at=d.ready_at, decided=d.decided + 1, decided_at=now)
            if d.kind == FollowUp.PICKUP_REMINDER and d.ready_at is not None
            else None
        )

        async def record_send(o: Outcome) -> None:
            await self._record(o, ref, d, next_due)

        o = await self._sender.deliver(
            ref.follow_up_id,
            update,
            d.kind.milestone,
            email_only=d.kind == FollowUp.SURVEY and self._survey_channel == "email",
            reconcile_since=d.first_released_at if d.retaken else None,
            abort=asyncio.Event(),
            record=record_send,
            follow_up=self._text(d, plan, update, now),
        )
        if o.outcome == HELD_NOTIFICATION:
            await self._store.release_later(
                [d.schedule_id],
                not_before=self._clock() + timedelta(seconds=self._hold_s),
                given_back=not o.maybe_sent,
            )
            self._metrics.follow_ups.labels(d.kind.value, HELD_NOTIFICATION).inc()
            return
        if o.outcome != State.SENT:  # a send was recorded as it went (before its slot was freed)
            await self._record(o, ref, d, None)  # not sent: no further reminder

    def _text(self, d: DueFollowUp, plan: Plan, update: ShipmentUpdate, now: datetime) -> FollowUpText:
        extra: dict[str, object] = {"reminder_number": plan.number, "days_waiting": plan.days_waiting}
        if d.kind == FollowUp.SURVEY and self._survey is not None:  # planned only with a survey
            locale = self._sender.locale(update.recipient.locale)
            extra = {"survey_url": self._survey.url(d.notification_id, locale, now)}
        return FollowUpText(d.kind.value, extra)

    async def _unsealed(self, d: DueFollowUp) -> ShipmentUpdate | None:
        """The pickup notice's event (the customer's contact), decrypted; None when it is gone."""
        sealed = await self._store.contact(d.notification_id)
        if sealed is None or self._keyring is None:
            return None
        try:
            return parse_event(
                self._keyring.decrypt(sealed.key_id, sealed.ciphertext, d.notification_id.bytes)
            )
        except NotifierError as exc:
            log.error("follow_up_impossible", notification_id=str(d.notification_id), why=type(exc).__name__)
            return None

    async def _drop(self, d: DueFollowUp, why: str) -> None:
        await self._store.drop_scheduled([d.schedule_id])
        self._metrics.follow_ups.labels(d.kind.value, why).inc()

    async def _record(self, o: Outcome, ref: FollowUpRef, d: DueFollowUp, next_due: datetime | None) -> None:
        if o.outcome not in RECEIPT_OUTCOMES:  # a bug, never a condition
            raise ValueError(f"a follow-up cannot be recorded as {o.outcome}")
        lease = self._receipts.outbox.lease()
        fresh = await self._store.record_follow_up(
            o, ref, receipt_row(o, ref), schedule_id=d.schedule_id, next_due=next_due, lease=lease
        )
        await self._receipts.outbox.publish(lease, [ref.notification_id])
        if fresh:
            self._metrics.follow_ups.labels(d.kind.value, o.outcome).inc()
            log.info(
                "follow_up_decided",
                notification_id=str(d.notification_id),
                kind=d.kind.value,
                number=ref.number,
                outcome=o.outcome,
            )
