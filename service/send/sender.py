"""Send one notification: consent, the recipient lists (pilot mode, bad numbers), compose, then the
engine's plan (SMS A, SMS B, email) under the send slots. Returns its outcome, not yet recorded (the caller records it: ``service.report.receipts``).

Used for every first send (``service.pipeline.dispatch``) and for the email fallback an
undelivered SMS owes (``service.report.delivery_reports``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from service.compose.consent import Consent
from service.compose.message import Composer, FollowUpText, Message
from service.compose.recipient_checks import RecipientChecks
from service.domain import reasons
from service.domain.consent_snapshot import ConsentSnapshot
from service.domain.errors import RenderError, StoreUnavailable
from service.domain.lifecycle import HELD_NOTIFICATION, State
from service.domain.milestones import Milestone
from service.domain.model import ShipmentUpdate
from service.domain.outcome import Channel, Outcome
from service.domain.ports import NotificationStore
from service.domain.screening import Screen, Verdict, screen_verdict
from service.logs import get_logger
from service.metrics import Metrics
from service.send.delivery import DeliveryRequest, DeliveryResult
from service.send.engine import DeliveryEngine

log = get_logger(__name__)

#: The reason on a re-claimed notification's outcome when the provider already held its send.
REASON_RECONCILED = reasons.RECONCILED


class Sender:
    def __init__(
        self,
        *,
        engine: DeliveryEngine,
        composer: Composer,
        consent: Consent,
        store: NotificationStore,
        metrics: Metrics,
        clock: Callable[[], datetime],
        send_concurrency: int,  # how many sends may be in flight at once (the settings')
        checks: RecipientChecks | None = None,  # pilot mode's allow-list, numbers marked bad
    ) -> None:
        self._engine = engine
        self._composer = composer
        self._consent = consent
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._slots = asyncio.Semaphore(send_concurrency)
        self._checks = checks

    def locale(self, requested: str | None) -> str:
        """The locale a recipient asking for ``requested`` is written to (what the templates have)."""
        return self._composer.locale(requested)

    async def deliver(
        self,
        notification: uuid.UUID,
        update: ShipmentUpdate,
        milestone: Milestone,
        *,
        email_only: bool = False,
        consent: ConsentSnapshot | None = None,
        screen: Screen | None = None,
        reconcile_since: datetime | None = None,
        abort: asyncio.Event | None = None,
        record: Callable[[Outcome], Awaitable[None]] | None = None,
        follow_up: FollowUpText | None = None,
    ) -> Outcome:
        """``consent``: the recipient's consent if the caller looked it up (in bulk); None: look it up.
        The outcome keeps it: the consent this decision applied.
        ``screen``: the recipient lists' word (pilot mode, a marked number), likewise.
        ``abort``: once set (a send could not be recorded), no more sends are started.
        ``record``: makes a send durable; run before the send's slot is released, so the sends
        that a crash could leave unrecorded are at most the slots (``send_concurrency``).
        ``follow_up``: a message that follows the milestone's (a pickup reminder, the survey link),
        rendered from its own templates; ``notification`` is then the follow-up's own id."""

        def outcome(kind: str, channel: Channel = "none", **kw: object) -> Outcome:
            return Outcome(
                notification_id=notification,
                update=update,
                milestone=milestone,
                outcome=kind,
                channel=channel,
                decided_at=self._clock(),
                consent=applied,
                **kw,  # type: ignore[arg-type]
            )

        applied = consent if consent is not None else await self._consent.of(update)
        if applied.opted_out:
            return outcome(State.SUPPRESSED_OPTED_OUT, reason=reasons.OPTED_OUT)
        locale = self._composer.locale(update.recipient.locale)
        verdict, contact = await self._lists(update, screen, email_only=email_only)
        if verdict.suppressed is not None:
            return outcome(verdict.suppressed, locale=locale, reason=verdict.reason)
        email_only = email_only or verdict.email_only
        try:
            msg = self._composer.compose(
                milestone, contact, email_only=email_only, at=reconcile_since, follow_up=follow_up
            )
        except RenderError as exc:
            log.error("render_failed", notification_id=str(notification), error=str(exc))
            return outcome(State.FAILED, locale=locale, reason=reasons.RENDER_ERROR)
        if msg.failed:
            return outcome(State.FAILED, locale=locale, reason=msg.failed)
        if verdict.email_only and msg.phone_note is None:  # why no SMS: the lists'
            msg = dataclasses.replace(msg, phone_note=verdict.reason)
        async with self._slots:  # held until a send is recorded: in flight, unrecorded <= the slots
            if abort is not None and abort.is_set():
                raise StoreUnavailable("a send of this batch could not be recorded; no more are started")
            try:  # the email is rendered when the plan reaches it
                result = await self._engine.deliver(
                    DeliveryRequest(
                        notification,
                        msg.e164,
                        contact.recipient.email,
                        msg.sms,
                        msg.email,
                        skip_sms=msg.email_only,
                        reconcile_since=reconcile_since,
                        before_email=functools.partial(self._store.note_email_attempt, notification),
                    )
                )
            except RenderError as exc:
                log.error("render_failed", notification_id=str(notification), error=str(exc))
                return outcome(State.FAILED, locale=locale, reason=reasons.RENDER_ERROR)
            done = self._outcome(notification, outcome, result, msg, locale)
            if result.outcome == State.SENT and record is not None:
                await record(done)  # a failure propagates: the send is not durable
        if result.outcome == State.SUPPRESSED_OPTED_OUT and msg.e164:
            await self._consent.provider_opt_out(msg.e164, result.provider, order_id=update.order_id)
        if result.number_refused is not None and msg.e164 and self._checks is not None:
            await self._checks.refused(msg.e164, result.number_refused)  # not texted again
        return done

    async def _lists(
        self, update: ShipmentUpdate, screen: Screen | None, *, email_only: bool
    ) -> tuple[Verdict, ShipmentUpdate]:
        """The recipient lists' verdict (pilot mode, a marked number), and the recipient as it
        lets us use them (pilot mode: no address that is not on the allow-list)."""
        if self._checks is None:
            return Verdict(), update
        if screen is None:
            screen = await self._checks.screen(update)
        verdict = screen_verdict(screen, has_email=bool(update.recipient.email), email_only=email_only)
        if verdict.suppressed is not None and verdict.reason == reasons.BAD_NUMBER:
            self._metrics.bad_number_skips.labels("suppressed").inc()
        if not verdict.drop_email:
            return verdict, update
        recipient = dataclasses.replace(update.recipient, email=None)
        return verdict, dataclasses.replace(update, recipient=recipient)

    def _outcome(
        self,
        notification: uuid.UUID,
        outcome: Callable[..., Outcome],
        result: DeliveryResult,
        msg: Message,
        locale: str,
    ) -> Outcome:
        """The engine's result as the notification's outcome (counted and logged, not yet recorded)."""
        if result.outcome == State.SENT and result.channel == "sms" and msg.sms is not None:
            self._metrics.sms_segments.labels(result.provider or "", msg.sms.encoding).inc(msg.sms.segments)
        if result.outcome != HELD_NOTIFICATION and msg.phone_note == reasons.BAD_NUMBER:
            self._metrics.bad_number_skips.labels("email").inc()  # once decided: a hold is tried again
        if result.outcome not in (State.SENT, HELD_NOTIFICATION):
            log.warning(
                "notification_not_sent",
                notification_id=str(notification),
                outcome=result.outcome,
                reason=result.reason,
            )
        return outcome(
            result.outcome,
            result.channel,
            provider=result.provider,
            provider_message_id=result.provider_message_id,
            locale=locale,
            sms_encoding=result.sms_encoding,
            sms_segments=result.sms_segments,
            reason=msg.phone_note
            or (result.reason if result.outcome != State.SENT else None)
            or (REASON_RECONCILED if result.reconciled else None),
            reference=result.reference,
            maybe_sent=result.maybe_sent,
            earlier_unchecked=result.earlier_unchecked,
        )
