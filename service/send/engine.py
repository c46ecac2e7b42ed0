"""The delivery engine: one notification through SMS provider A, then B, then email.

For each step of the plan it respects the provider's circuit breaker and rate limit (counted in
SMS segments), retries transient errors with jittered exponential backoff inside the message's
deadline, and decides what a provider error means from that error's attributes alone (their table
is at the top of ``service.domain.errors``), in this order:

==================  ==============================================================================
attribute           what happens
==================  ==============================================================================
breaker_failure     counted against the provider's circuit breaker; otherwise counted a success
opted_out           stop: nothing is sent anywhere, the outcome says so (``suppressed_opted_out``)
not retriable       this step ends: the next SMS provider if ``next_provider``, else email
pause_s             pause that provider for that long, then try it again (no backoff)
ambiguous           ask the provider whether it has the message (``find_sent``); if it does, that
                    is the send; if it can't say, the retry may duplicate and is counted
(retriable)         backoff, then try again; out of attempts or time: the next step
==================  ==============================================================================

When nothing was sent and a provider-side reason (``provider_side``: unavailable, circuit open,
rate limit past the deadline, our account rejected) stood in the way of at least one step, the
outcome is ``held``, not ``failed``: the caller keeps the notification and tries again later. It
is never dropped while a provider might still carry it.

A notification re-claimed after a crash (``reconcile_since``) is first looked up at each SMS
provider (``find_sent``): a message it already holds is the send, and nothing goes out again.

Provider health (breaker) counts only what says something about the provider: unavailability
and rejections of our account, not invalid numbers, opt-outs or rate limits.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from service.domain.backoff import RetryPolicy
from service.domain.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from service.domain.errors import ProviderError
from service.domain.lifecycle import DRAINING, HELD_NOTIFICATION, State
from service.domain.ports import EmailMessage, EmailSender, SendAccepted, SmsSender
from service.domain.ratelimit import TokenBucket
from service.domain.references import MessageReferences
from service.logs import get_logger
from service.metrics import Metrics

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SmsContent:
    body: str
    segments: int
    encoding: str


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """What to deliver. ``phone`` is a valid E.164 mobile or None; ``email_message`` renders lazily."""

    notification_id: uuid.UUID
    phone: str | None = field(repr=False)
    email: str | None = field(repr=False)
    sms: SmsContent | None
    email_message: Callable[[], EmailMessage] | None = field(default=None, repr=False)
    skip_sms: bool = False  # e.g. the SMS was reported undelivered: email only
    reconcile_since: datetime | None = None  # re-claimed after a crash: look for an earlier send first
    # awaited before each email request (e.g. a durable "may have emailed" mark): email has no look-up
    before_email: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: str  # a State (sent, failed, suppressed_…) or HELD_NOTIFICATION
    channel: str  # sms | email | none
    provider: str | None = None
    provider_message_id: str | None = None
    reference: str | None = None
    reason: str | None = None
    sms_segments: int | None = None
    sms_encoding: str | None = None
    maybe_sent: bool = False  # held after an attempt whose fate is unknown: a later send may duplicate it
    reconciled: bool = False  # an earlier attempt's send, found at the provider: nothing sent now
    earlier_unchecked: bool = False  # re-claimed, and an SMS provider could not say whether it holds a send


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    rate_per_s: float
    burst: float


class _Provider:
    def __init__(
        self, name: str, limits: ProviderLimits, policy: BreakerPolicy, now: float, metrics: Metrics
    ) -> None:
        self.name = name
        self.limits = limits
        self.bucket = TokenBucket(limits.rate_per_s, limits.burst, now=now)

        def changed(old: BreakerState, new: BreakerState) -> None:
            metrics.circuit_state.labels(name).set(new.level)
            metrics.circuit_transitions.labels(name, new.value).inc()
            log.warning("circuit_changed", provider=name, old=old.value, new=new.value)

        self.breaker = CircuitBreaker(policy, now=now, on_transition=changed)
        self.pacing = asyncio.Lock()  # sends to one provider are admitted one at a time
        metrics.circuit_state.labels(name).set(0)


@dataclass(frozen=True, slots=True)
class _Blocked:
    """A step that sent nothing: why, and what that means for the steps after it."""

    reason: str
    no_more_sms: bool = False
    maybe_sent: bool = False  # the last attempt's fate is unknown: a later send may duplicate it
    provider_side: bool = True  # the provider, not the message, stood in the way: may pass later
    opted_out: ProviderError | None = None  # the provider says the recipient opted out: stop


@dataclass(slots=True)
class _Trail:
    """What stood in the way of a delivery so far, step by step."""

    reason: str
    blocked: bool = False  # a provider-side reason stopped some step: it may pass later
    maybe_sent: bool = False

    def note(self, step: _Blocked) -> None:
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
    ) -> None:
        self._sms = list(sms)
        self._email = email
        self._metrics = metrics
        self.references = references  # each step's reference, keyed (reports name the send by it)
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not security
        self._paused = 0
        now = clock()
        policy = breaker or BreakerPolicy()
        senders: list[SmsSender | EmailSender] = [*self._sms, *([email] if email else [])]
        self._providers = {
            s.name: _Provider(s.name, limits.get(s.name, ProviderLimits(1e9, 1e9)), policy, now, metrics)
            for s in senders
        }

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
        for p in self._providers.values():
            p.bucket.set_rate(max(p.limits.rate_per_s * fraction, 1e-6), now)

    def circuit(self, provider: str) -> BreakerState:
        return self._providers[provider].breaker.state(self._clock())

    async def deliver(self, req: DeliveryRequest) -> DeliveryResult:
        deadline = self._retry.deadline(self._clock())
        sms_allowed = req.phone is not None and req.sms is not None and not req.skip_sms
        unchecked = False
        if sms_allowed and req.reconcile_since is not None:
            earlier, unchecked = await self._earlier_send(req, req.reconcile_since)
            if earlier is not None:
                return earlier
        result = await self._plan(req, deadline, sms_allowed)
        return replace(result, earlier_unchecked=True) if unchecked else result

    async def _plan(self, req: DeliveryRequest, deadline: float, sms_allowed: bool) -> DeliveryResult:
        trail = _Trail("invalid_phone" if req.phone is None and not req.skip_sms else "no_channel")
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
        for step, sender in enumerate(self._sms, start=1):
            accepted = await self._try_sms(sender, req, step, deadline)
            if isinstance(accepted, _Blocked):
                if (opted_out := accepted.opted_out) is not None:
                    return DeliveryResult(
                        State.SUPPRESSED_OPTED_OUT,
                        "none",
                        opted_out.provider,
                        reason=f"{opted_out.provider}_{opted_out.code}",
                    )
                trail.note(accepted)
                if accepted.maybe_sent:
                    self._metrics.possible_duplicates.inc()
                if accepted.reason == DRAINING:
                    return trail.result()  # held: nothing new starts while draining
                if accepted.no_more_sms:
                    return None
                if step < len(self._sms):
                    self._metrics.failovers.labels(sender.name, "next_sms").inc()
                continue
            return DeliveryResult(
                State.SENT,
                "sms",
                sender.name,
                accepted.message_id,
                self._ref(req, step),
                sms_segments=req.sms.segments if req.sms else None,
                sms_encoding=req.sms.encoding if req.sms else None,
            )
        return None

    async def _email_step(
        self, sender: EmailSender, req: DeliveryRequest, deadline: float, trail: _Trail
    ) -> DeliveryResult:
        step = len(self._sms) + 1
        accepted = await self._try_email(sender, req, step, deadline)
        if isinstance(accepted, _Blocked):
            if accepted.opted_out is not None:
                # No email provider of ours reports an opt-out as an error (SendGrid's suppressions
                # are not refusals), and an email opt-out must not become the phone's: the error
                # goes to the caller as it is.
                raise accepted.opted_out
            trail.note(accepted)
            if accepted.provider_side:
                return trail.result()
            return DeliveryResult(State.FAILED, "email", sender.name, reason=accepted.reason)
        return DeliveryResult(State.SENT, "email", sender.name, accepted.message_id, self._ref(req, step))

    async def _earlier_send(
        self, req: DeliveryRequest, since: datetime
    ) -> tuple[DeliveryResult | None, bool]:
        """After a crash: the send an earlier claim made, if a provider can show it.

        Also whether some provider could not answer (then a new send may duplicate one it holds).
        """
        if req.phone is None or req.sms is None:
            return None, False
        phone, sms = req.phone, req.sms
        unchecked = False
        for step, sender in enumerate(self._sms, start=1):
            reference = self._ref(req, step)

            async def check(
                since: datetime, sender: SmsSender = sender, reference: str = reference
            ) -> SendAccepted | None:
                return await sender.find_sent(phone, sms.body, reference=reference, since=since)

            found, known = await self._reconcile(sender.name, check, since)
            unchecked = unchecked or not known
            if found is not None:
                result = DeliveryResult(
                    State.SENT,
                    "sms",
                    sender.name,
                    found.message_id,
                    reference,
                    sms_segments=sms.segments,
                    sms_encoding=sms.encoding,
                    reconciled=True,
                )
                return result, unchecked
        return None, unchecked

    async def _try_sms(
        self, sender: SmsSender, req: DeliveryRequest, step: int, deadline: float
    ) -> SendAccepted | _Blocked:
        phone, sms, reference = req.phone, req.sms, self._ref(req, step)
        if phone is None or sms is None:
            return _Blocked("no_sms", provider_side=False)

        async def send() -> SendAccepted:
            return await sender.send_sms(phone, sms.body, reference=reference)

        async def check(since: datetime) -> SendAccepted | None:
            return await sender.find_sent(phone, sms.body, reference=reference, since=since)

        return await self._attempts(sender.name, send, check, float(sms.segments), deadline)

    async def _try_email(
        self, sender: EmailSender, req: DeliveryRequest, step: int, deadline: float
    ) -> SendAccepted | _Blocked:
        if req.email is None or req.email_message is None:
            return _Blocked("no_email", provider_side=False)
        email, message, reference = req.email, req.email_message(), self._ref(req, step)
        before = req.before_email

        async def send() -> SendAccepted:
            nonlocal before
            if before is not None:  # once, before the first request (not before every retry)
                await before()
                before = None
            return await sender.send_email(email, message, reference=reference)

        return await self._attempts(sender.name, send, None, 1.0, deadline)

    async def _attempts(
        self,
        name: str,
        send: Callable[[], Awaitable[SendAccepted]],
        check: Callable[[datetime], Awaitable[SendAccepted | None]] | None,
        cost: float,
        deadline: float,
    ) -> SendAccepted | _Blocked:
        """Up to the policy's attempts at one provider; what the error says decides each next move."""
        p = self._providers[name]
        m = self._metrics
        reason = f"{name}_unavailable"
        maybe_sent = False
        for attempt in range(self._retry.max_attempts_per_provider):
            blocked = await self._admit(p, cost, deadline)
            if blocked is not None:
                return blocked
            if attempt:
                m.retries.labels(name).inc()
            if maybe_sent:
                m.possible_duplicates.inc()  # we could not learn whether the last attempt went out
            started, started_at = self._clock(), datetime.now(UTC)
            m.attempts.labels(name).inc()
            try:
                accepted = await send()
            except ProviderError as exc:
                m.provider_latency.labels(name, "error").observe(self._clock() - started)
                m.provider_errors.labels(name, type(exc).__name__).inc()
                reason = f"{name}_{exc.code}"
                if (blocked := self._judge(p, exc, reason)) is not None:
                    return blocked
                if exc.pause_s is not None:
                    maybe_sent = False
                    continue  # the bucket is paused: try again when it opens
                maybe_sent = exc.ambiguous
                if exc.ambiguous and check is not None:
                    found, known = await self._reconcile(name, check, started_at)
                    if found is not None:
                        return found
                    maybe_sent = not known
                delay = self._retry.next_delay(
                    attempt + 1, now=self._clock(), deadline=deadline, rng=self._rng
                )
                if delay is None:
                    break  # attempts or time used up: no wait before failing over
                await self._sleep(delay)
                continue
            m.provider_latency.labels(name, "ok").observe(self._clock() - started)
            p.breaker.record_success(self._clock())
            return accepted
        return _Blocked(reason, maybe_sent=maybe_sent)

    async def _admit(self, p: _Provider, cost: float, deadline: float) -> _Blocked | None:
        """Wait for the provider's breaker and rate limit; or why this provider is given up on."""
        if self._paused:
            return _Blocked(DRAINING)
        now = self._clock()
        if not p.breaker.allow(now):
            self._metrics.failovers.labels(p.name, "circuit_open").inc()
            return _Blocked(f"{p.name}_circuit_open")
        async with p.pacing:
            if self._paused:
                return _Blocked(DRAINING)
            now = self._clock()
            wait = p.bucket.reserve(cost, now)
            if wait > 0:
                if now + wait > deadline:
                    p.breaker.record_success(now)  # give back the probe slot: not the provider's fault
                    return _Blocked(f"{p.name}_rate_limit_deadline")
                self._metrics.rate_limit_wait.labels(p.name).inc(wait)
                await self._sleep(wait)
            p.bucket.sent(self._clock())
        return None

    def _judge(self, p: _Provider, exc: ProviderError, reason: str) -> _Blocked | None:
        """Record what an error says about the provider; this step's end, or None to try it again."""
        now = self._clock()
        if exc.breaker_failure:
            p.breaker.record_failure(now)
        else:
            p.breaker.record_success(now)  # the provider answered: it works
        if exc.opted_out:
            return _Blocked(reason, provider_side=False, opted_out=exc)
        if not exc.retriable:
            return _Blocked(reason, no_more_sms=not exc.next_provider, provider_side=exc.provider_side)
        if exc.pause_s is not None:
            p.bucket.pause_until(now + exc.pause_s)
        return None

    async def _reconcile(
        self, name: str, check: Callable[[datetime], Awaitable[SendAccepted | None]], since: datetime
    ) -> tuple[SendAccepted | None, bool]:
        """After an ambiguous error, ask the provider whether it took the message after all.

        Returns the message if it exists, and whether the answer is known.
        """
        try:
            found = await check(since)
        except ProviderError:
            self._metrics.reconciliations.labels(name, "unknown").inc()
            return None, False
        self._metrics.reconciliations.labels(name, "found" if found else "not_found").inc()
        return found, True

    def _ref(self, req: DeliveryRequest, step: int) -> str:
        """The reference of one step of one notification: echoed by providers in their callbacks."""
        return self.references.make(req.notification_id, step)
