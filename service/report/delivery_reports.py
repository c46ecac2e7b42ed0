"""Providers' delivery reports, already authenticated, applied to notifications.

``delivered`` closes a notification. ``undelivered`` records the report and, for an SMS, sends
the email fallback: the sealed event is decrypted, the email rendered and sent through the
engine, and the new outcome recorded with its own receipt. Reports are matched on the attempt
they name (its reference, which carries a keyed tag: see ``service.domain.references``): a late
report for an earlier attempt, a repeat, or a report from a provider other than the one that sent
the message changes nothing (counted as ``stale`` / ``wrong_provider``).

The fallback is owed from the moment the report is recorded (same transaction), so it is never
lost: if the email provider is down it is tried again with backoff (``retry_fallbacks``, run by
the service's periodic job) up to a number of attempts, and if this process dies mid-fallback
the job takes it up when its lease ends. Only then is it recorded as failed.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from service.compose.recipient_checks import RecipientChecks
from service.contracts import parse_event
from service.domain import reasons
from service.domain.backoff import backoff_delay
from service.domain.errors import NotifierError
from service.domain.lifecycle import (
    HELD_NOTIFICATION,
    HELD_REPORT,
    Duty,
    Event,
    State,
    decided,
    reported,
    transition,
)
from service.domain.model import ShipmentUpdate
from service.domain.outcome import DeliveryTarget, HeldReport, Outcome, SealedContact
from service.domain.ports import NotificationStore
from service.domain.references import MessageReferences
from service.logs import get_logger
from service.metrics import Metrics
from service.privacy.crypto import Keyring
from service.report.group_commit import GroupCommit, Pending
from service.report.receipts import Receipts
from service.send.sender import Sender

log = get_logger(__name__)

MAX_FALLBACK_DELAY_S = 1800.0


def _now() -> datetime:
    return datetime.now(UTC)


class DeliveryReports:
    def __init__(
        self,
        *,
        store: NotificationStore,
        receipts: Receipts,
        sender: Sender,
        keyring: Keyring | None,
        metrics: Metrics,
        references: MessageReferences,
        clock: Callable[[], datetime] = _now,
        fallback_retry_s: float = 30.0,
        fallback_attempts: int = 12,
        fallback_lease_s: float = 120.0,
        rng: random.Random | None = None,
        checks: RecipientChecks | None = None,  # an SMS's report counts against its number
    ) -> None:
        self._store = store
        self._receipts = receipts
        self._sender = sender
        self._keyring = keyring
        self._metrics = metrics
        self._references = references
        self._clock = clock
        self._retry_s = fallback_retry_s
        self._attempts = fallback_attempts
        self._lease_s = fallback_lease_s
        self._rng = rng or random.Random()  # noqa: S311  # spreads retries, not a secret
        self._group: GroupCommit[list[HeldReport]] = GroupCommit(self._write_group)
        self._checks = checks

    def rejected(self, provider: str) -> None:
        """A callback that failed authentication: counted, so forgery attempts show on a dashboard."""
        self._metrics.callbacks.labels(provider, "forged").inc()

    def expired(self, provider: str) -> None:
        """An authentic event dated outside the accepted window: ignored, counted."""
        self._metrics.callbacks.labels(provider, "expired").inc()

    async def report(self, provider: str, reference: str, *, delivered: bool, code: str | None = None) -> str:
        """Apply one report; returns what became of it (also counted in ``notifier_callbacks``)."""
        result = await self._apply(provider, reference, delivered=delivered, code=code)
        self._metrics.callbacks.labels(provider, result).inc()
        return result

    async def reconciled(
        self, provider: str, reference: str, *, delivered: bool, code: str | None = None
    ) -> str:
        """Apply a final status learnt by asking the provider (no callback came), exactly as a
        callback: receipt, and for an undelivered SMS the owed email fallback. Not counted as a
        callback (``notifier_status_reconciliations`` counts it)."""
        return await self._apply(provider, reference, delivered=delivered, code=code)

    async def _apply(self, provider: str, reference: str, *, delivered: bool, code: str | None) -> str:
        parsed = self._references.parse(reference)
        if parsed is None:  # not one we made (its keyed tag does not match): never looked up
            return "bad_reference"
        notification, _ = parsed
        target = await self._store.delivery_target(notification)
        if target is not None and target.state in (State.CLAIMED, State.SCHEDULED):  # scheduled: a release
            # The report overtook the send's own bookkeeping: hold it until the send is recorded,
            # then look again, in case the send was recorded meanwhile (whoever takes it applies it).
            await self._store.hold_report(reference, provider, delivered, code)
            target = await self._store.delivery_target(notification)
            if (
                target is None
                or target.state in (State.CLAIMED, State.SCHEDULED)
                or not await self._store.take_reports([reference])
            ):
                return HELD_REPORT
        if target is None or target.reference != reference or target.state != State.SENT:
            return "stale"
        if target.provider != provider:  # only the provider that sent the message reports on it
            log.warning("callback_wrong_provider", provider=provider, sent_by=target.provider)
            return "wrong_provider"
        return await self.apply_result(target, provider, delivered=delivered, code=code)

    async def apply_result(
        self, target: DeliveryTarget, provider: str, *, delivered: bool, code: str | None = None
    ) -> str:
        """Record a provider's final word on the attempt ``target`` names (its ``reference``) with its
        receipt, publish the receipt after the notification's earlier ones, and send the email
        fallback an undelivered SMS owes. Returns ``delivered``, ``undelivered_…`` or ``stale`` (the
        attempt is no longer the current one, or was reported already)."""
        notification, reference = target.notification_id, target.reference
        if reference is None:
            return "stale"
        move = transition(target.state, reported(delivered=delivered, channel=target.channel or "none"))
        kind = move.target
        reason = None if delivered else reasons.provider_reason(provider, code or reasons.UNDELIVERED)
        outcome = Outcome(
            notification,
            ShipmentUpdate.for_receipt(
                event_id=target.event_id,
                order_id=target.order_id,
                waybill=target.waybill,
                occurred_at=target.occurred_at,
            ),
            target.milestone,
            kind,
            "email" if target.channel == "email" else "sms",
            self._clock(),
            provider=provider,
            reason=reason,
            reference=reference,
        )
        owes_fallback = Duty.OWE_FALLBACK in move.owes
        if not await self._receipts.record_report(
            outcome, reference, fallback_in_s=self._lease_s if owes_fallback else None
        ):
            return "stale"
        if self._checks is not None and target.channel == "sms":  # bad-number hygiene: may mark it
            await self._checks.reported(notification, provider, delivered=delivered, code=code)
        if not owes_fallback:
            return kind
        return await self._fall_back_to_email(target, attempt=1)

    async def retry_fallbacks(self, limit: int = 100) -> int:
        """Try the owed email fallbacks that are due (their provider was down, or a process died
        mid-fallback); returns how many were tried."""
        targets = await self._store.due_fallbacks(limit, self._lease_s)
        for target in targets:
            if target.state != State.UNDELIVERED:  # decided meanwhile
                await self._store.fallback_later(target.notification_id, None)
                continue
            result = await self._fall_back_to_email(target, attempt=target.fallback_attempts)
            log.info("fallback_retried", notification_id=str(target.notification_id), result=result)
        return len(targets)

    async def record(self, outcomes: Sequence[Outcome], contacts: Sequence[SealedContact] = ()) -> None:
        """Record outcomes with their receipts (``Receipts.record``), then apply any report that
        overtook them: the one way a decided notification is recorded, by a send or a fallback.

        Records asked for while another is written are written together (``group_commit``): one
        transaction, one outbox take, one produce for the group; each caller returns when its own
        outcomes are durable, then applies the reports held for them."""
        if not outcomes:
            return
        for held in await self._group.record(outcomes, contacts):
            await self.report(held.provider, held.reference, delivered=held.delivered, code=held.code)

    async def _write_group(self, group: list[Pending[list[HeldReport]]]) -> list[list[HeldReport]]:
        """Record a group's outcomes, and take the reports held for them (applied by each caller,
        outside the group: applying one may record an email fallback, which joins a later group)."""
        outcomes = [o for p in group for o in p.outcomes]
        await self._receipts.record(outcomes, [c for p in group for c in p.contacts])
        held = {
            h.reference: h
            for h in await self._store.take_reports([o.reference for o in outcomes if o.reference])
        }
        return [[held[o.reference] for o in p.outcomes if o.reference in held] for p in group]

    async def _fall_back_to_email(self, target: DeliveryTarget, *, attempt: int) -> str:
        result = await self._try_fallback(target, attempt)
        self._metrics.email_fallbacks.labels(result.removeprefix("undelivered_").removeprefix("email_")).inc()
        return result

    async def _not_owed(self, target: DeliveryTarget, result: str) -> str:
        transition(State.UNDELIVERED, Event.FALLBACK_DROPPED)
        await self._store.fallback_later(target.notification_id, None)
        return result

    async def _try_fallback(self, target: DeliveryTarget, attempt: int) -> str:
        sealed = await self._store.contact(target.notification_id)
        if sealed is None or self._keyring is None:
            log.warning(
                "fallback_impossible", notification_id=str(target.notification_id), why="no sealed contact"
            )
            return await self._not_owed(target, "undelivered_no_fallback")
        try:
            event = self._keyring.decrypt(sealed.key_id, sealed.ciphertext, target.notification_id.bytes)
            update = parse_event(event)
        except NotifierError as exc:
            log.error(
                "fallback_impossible", notification_id=str(target.notification_id), why=type(exc).__name__
            )
            return await self._not_owed(target, "undelivered_no_fallback")
        if not update.recipient.email:
            return await self._not_owed(target, "undelivered_no_email")
        outcome = await self._sender.deliver(
            target.notification_id, update, target.milestone, email_only=True
        )
        gave_up = False
        if outcome.outcome == HELD_NOTIFICATION:
            if attempt < self._attempts:
                transition(State.UNDELIVERED, Event.FALLBACK_HELD)
                # The email provider is down: the fallback stays owed and is tried again later.
                delay = backoff_delay(
                    attempt - 1, base_s=self._retry_s, cap_s=MAX_FALLBACK_DELAY_S, rng=self._rng
                )
                await self._store.fallback_later(target.notification_id, delay)
                log.warning(
                    "fallback_held",
                    notification_id=str(target.notification_id),
                    attempt=attempt,
                    retry_in_s=delay,
                    reason=outcome.reason,
                )
                return "undelivered_email_held"
            # Out of attempts: recorded as failed, with the reason, and the receipt says so.
            outcome, gave_up = dataclasses.replace(outcome, outcome=State.FAILED, channel="email"), True
        transition(State.UNDELIVERED, decided(outcome.outcome, outcome.channel))  # an illegal outcome raises
        await self.record([outcome])
        log.info(
            "fallback_sent" if outcome.outcome == State.SENT else "fallback_failed",
            notification_id=str(target.notification_id),
            outcome=outcome.outcome,
            reason=outcome.reason,
        )
        if outcome.outcome == State.SUPPRESSED_PILOT:  # pilot mode: the address is not listed
            return "undelivered_pilot"
        result = "gave_up" if gave_up else "sent" if outcome.outcome == State.SENT else "failed"
        return f"undelivered_email_{result}"
