"""The delivery engine: one notification through SMS provider A, then B, then email.

The plan, top-down (``DeliveryEngine.deliver``):

1. A notification re-claimed after a crash (``reconcile_since``) is first looked up at each SMS
   provider (``find_sent``): a message it already holds is the send, and nothing goes out again.
2. Each SMS provider in turn (``service.send.steps``), unless there is no valid phone or the SMS
   is skipped. A step that sends nothing says why (``Blocked``); the plan goes on to the next
   SMS provider, or straight to email when the error says no other SMS provider can do better.
3. Email, when there is an address and a message.

Inside one step, ``service.send.provider_slot`` admits the send (circuit breaker, rate limit in
SMS segments, the message's deadline), retries transient errors with jittered backoff, and reads
what a provider error means from its attributes (the table is in that module's docstring).

When nothing was sent and a provider-side reason (``provider_side``: unavailable, circuit open,
rate limit past the deadline, our account rejected) stood in the way of at least one step, the
outcome is ``held``, not ``failed``: the caller keeps the notification and tries again later. It
is never dropped while a provider might still carry it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from service.domain import reasons
from service.domain.backoff import RetryPolicy
from service.domain.breaker import BreakerPolicy, BreakerState
from service.domain.lifecycle import DRAINING, HELD_NOTIFICATION, State
from service.domain.ports import EmailSender, RateSchedule, SmsSender
from service.domain.references import MessageReferences
from service.metrics import Metrics
from service.send.delivery import DeliveryRequest, DeliveryResult, SmsContent
from service.send.provider_slot import Blocked, ProviderLimits, ProviderSlot, SlotContext
from service.send.steps import EmailStep, SmsStep

__all__ = ["DeliveryEngine", "DeliveryRequest", "DeliveryResult", "ProviderLimits", "SmsContent"]


@dataclass(slots=True)
class _Trail:
    """What stood in the way of a delivery so far, step by step."""

    reason: str
    blocked: bool = False  # a provider-side reason stopped some step: it may pass later
    maybe_sent: bool = False
    number_refused: str | None = None  # an SMS provider refused the number for good (InvalidRecipient)

    def note(self, step: Blocked) -> None:
        self.reason = step.reason
        self.blocked = self.blocked or step.provider_side
        self.maybe_sent = self.maybe_sent or step.maybe_sent

    def result(self) -> DeliveryResult:
        """Nothing was sent: held if a provider may take it later, else failed."""
        if self.blocked:
            return DeliveryResult(HELD_NOTIFICATION, "none", reason=self.reason, maybe_sent=self.maybe_sent)
        return DeliveryResult(State.FAILED, "none", reason=self.reason)


class DeliveryEngine:
    def __init__(
        self,
        *,
        sms: Sequence[SmsSender],
        email: EmailSender | None,
        limits: Mapping[str, ProviderLimits],
        metrics: Metrics,
        references: MessageReferences,
        breaker: BreakerPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        schedule: RateSchedule | None = None,  # the group's rate schedule; None: each instance its share
    ) -> None:
        self._metrics = metrics
        self.references = references  # each step's reference, keyed (reports name the send by it)
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._paused = 0
        now = clock()
        policy = breaker or BreakerPolicy()
        rng = rng or random.Random()  # noqa: S311  # jitter, not security
        ctx = SlotContext(
            retry=self._retry,
            metrics=metrics,
            clock=clock,
            sleep=sleep,
            rng=rng,
            paused=lambda: self.draining,
        )
        senders: list[SmsSender | EmailSender] = [*sms, *([email] if email else [])]
        self._slots = {
            s.name: ProviderSlot(
                s.name,
                limits.get(s.name, ProviderLimits(1e9, 1e9)),
                policy,
                now,
                ctx,
                schedule=schedule if s.name in limits else None,  # a provider with no limit books nothing
            )
            for s in senders
        }
        self._sms = [SmsStep(n, s, self._slots[s.name], references) for n, s in enumerate(sms, start=1)]
        self._email = (
            EmailStep(len(self._sms) + 1, email, self._slots[email.name], references) if email else None
        )

    def pause_sends(self) -> None:
        """Start no new provider call: what has not begun is held (shutdown, rebalance drain)."""
        self._paused += 1

    def resume_sends(self) -> None:
        self._paused = max(0, self._paused - 1)

    @property
    def draining(self) -> bool:
        return self._paused > 0

    def set_share(self, fraction: float) -> None:
        """This instance's share of every provider's rate (its share of the group's partitions)."""
        now = self._clock()
        for slot in self._slots.values():
            slot.set_share(fraction, now)

    def circuit(self, provider: str) -> BreakerState:
        return self._slots[provider].breaker.state(self._clock())

    def circuit_levels(self) -> dict[str, int]:
        """Every provider's circuit now, as ``notifier_circuit_state`` levels (read when scraped)."""
        now = self._clock()
        return {name: slot.breaker.state(now).level for name, slot in self._slots.items()}

    async def deliver(self, req: DeliveryRequest) -> DeliveryResult:
        deadline = self._retry.deadline(self._clock())
        sms_allowed = req.phone is not None and req.sms is not None and not req.skip_sms
        unchecked = False
        if sms_allowed and req.reconcile_since is not None:
            earlier, unchecked = await self._earlier_send(req, req.reconcile_since)
            if earlier is not None:
                return earlier
        trail = _Trail(
            reasons.INVALID_PHONE if req.phone is None and not req.skip_sms else reasons.NO_CHANNEL
        )
        result = await self._plan(req, deadline, sms_allowed, trail)
        if trail.number_refused is not None:  # the caller marks the number (bad-number hygiene)
            result = replace(result, number_refused=trail.number_refused)
        return replace(result, earlier_unchecked=True) if unchecked else result

    async def _plan(
        self, req: DeliveryRequest, deadline: float, sms_allowed: bool, trail: _Trail
    ) -> DeliveryResult:
        if sms_allowed:
            result = await self._sms_steps(req, deadline, trail)
            if result is not None:
                return result
        if self._email is not None and req.email and req.email_message is not None:
            if req.phone is not None and not req.skip_sms:
                self._metrics.failovers.labels(self._sms[-1].name if self._sms else "none", "email").inc()
            return await self._email_step(self._email, req, deadline, trail)
        if req.phone is None and not req.skip_sms:
            return DeliveryResult(State.SUPPRESSED_INVALID_RECIPIENT, "none", reason=trail.reason)
        return trail.result()

    async def _sms_steps(self, req: DeliveryRequest, deadline: float, trail: _Trail) -> DeliveryResult | None:
        """SMS provider A, then B. None: no SMS went out, go on to email."""
        for step in self._sms:
            accepted = await step.send(req, deadline)
            if isinstance(accepted, Blocked):
                if (opted_out := accepted.opted_out) is not None:
                    return DeliveryResult(
                        State.SUPPRESSED_OPTED_OUT,
                        "none",
                        opted_out.provider,
                        reason=reasons.provider_reason(opted_out.provider, opted_out.code),
                    )
                trail.note(accepted)
                if accepted.maybe_sent:
                    self._metrics.possible_duplicates.inc()
                if accepted.reason == DRAINING:
                    return trail.result()  # held: nothing new starts while draining
                if accepted.no_more_sms:  # the number itself was refused: no SMS provider can do better
                    trail.number_refused = accepted.reason
                    return None
                if step.number < len(self._sms):
                    self._metrics.failovers.labels(step.name, "next_sms").inc()
                continue
            return DeliveryResult(
                State.SENT,
                "sms",
                step.name,
                accepted.message_id,
                step.reference(req),
                sms_segments=req.sms.segments if req.sms else None,
                sms_encoding=req.sms.encoding if req.sms else None,
            )
        return None

    async def _email_step(
        self, step: EmailStep, req: DeliveryRequest, deadline: float, trail: _Trail
    ) -> DeliveryResult:
        accepted = await step.send(req, deadline)
        if isinstance(accepted, Blocked):
            if accepted.opted_out is not None:
                # No email provider of ours reports an opt-out as an error (SendGrid's suppressions
                # are not refusals), and an email opt-out must not become the phone's: the error
                # goes to the caller as it is.
                raise accepted.opted_out
            trail.note(accepted)
            if accepted.provider_side:
                return trail.result()
            return DeliveryResult(State.FAILED, "email", step.name, reason=accepted.reason)
        return DeliveryResult(State.SENT, "email", step.name, accepted.message_id, step.reference(req))

    async def _earlier_send(
        self, req: DeliveryRequest, since: datetime
    ) -> tuple[DeliveryResult | None, bool]:
        """After a crash: the send an earlier claim made, if a provider can show it.

        Also whether some provider could not answer (then a new send may duplicate one it holds).
        """
        if req.phone is None or req.sms is None:
            return None, False
        sms = req.sms
        unchecked = False
        for step in self._sms:
            found, known = await step.find_earlier(req, req.phone, sms.body, since)
            unchecked = unchecked or not known
            if found is not None:
                result = DeliveryResult(
                    State.SENT,
                    "sms",
                    step.name,
                    found.message_id,
                    step.reference(req),
                    sms_segments=sms.segments,
                    sms_encoding=sms.encoding,
                    reconciled=True,
                )
                return result, unchecked
        return None, unchecked
