"""One provider as the delivery engine sees it: its admission, its attempts, and what an error means.

A send is admitted when the provider's circuit breaker allows it and its rate limit (a token
bucket, counted in SMS segments) has room before the message's deadline. Transient errors are
retried with jittered exponential backoff inside the deadline. What a provider error means is
read from that error's attributes alone (their table is at the top of ``service.domain.errors``),
in this order:

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

Provider health (breaker) counts only what says something about the provider: unavailability
and rejections of our account, not invalid numbers, opt-outs or rate limits.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.domain import reasons
from service.domain.backoff import RetryPolicy
from service.domain.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from service.domain.errors import ProviderError, StoreUnavailable
from service.domain.group_rate import GroupPacer
from service.domain.lifecycle import DRAINING
from service.domain.ports import RateSchedule, SendAccepted
from service.domain.ratelimit import TokenBucket
from service.logs import get_logger
from service.metrics import Metrics

log = get_logger(__name__)

Send = Callable[[], Awaitable[SendAccepted]]
Check = Callable[[datetime], Awaitable[SendAccepted | None]]  # the send made since then, if any


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    rate_per_s: float
    burst: float
    window_s: float = 1.0  # the group schedule caps each instance's sends over this window (1 / headroom)


@dataclass(frozen=True, slots=True)
class Blocked:
    """A step that sent nothing: why, and what that means for the steps after it."""

    reason: str
    no_more_sms: bool = False
    maybe_sent: bool = False  # the last attempt's fate is unknown: a later send may duplicate it
    provider_side: bool = True  # the provider, not the message, stood in the way: may pass later
    opted_out: ProviderError | None = None  # the provider says the recipient opted out: stop


@dataclass(frozen=True, slots=True)
class SlotContext:
    """What every provider slot of one engine shares."""

    retry: RetryPolicy
    metrics: Metrics
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random  # the backoff's jitter
    paused: Callable[[], bool]  # sends are paused (shutdown, rebalance drain): start no new call


class ProviderSlot:
    """One provider's breaker, rate limit and pacing, shared by every step that uses it."""

    def __init__(
        self,
        name: str,
        limits: ProviderLimits,
        policy: BreakerPolicy,
        now: float,
        ctx: SlotContext,
        *,
        schedule: RateSchedule | None = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self._ctx = ctx
        # This instance's share of the limit (by its partitions): the pace without a group schedule,
        # or while the schedule cannot be reached.
        self.bucket = TokenBucket(limits.rate_per_s, limits.burst, now=now)
        self._schedule = schedule
        self.group = GroupPacer(limits.rate_per_s, window_s=limits.window_s) if schedule is not None else None
        self._schedule_down = False
        metrics = ctx.metrics

        def changed(old: BreakerState, new: BreakerState) -> None:
            metrics.circuit_transitions.labels(name, new.value).inc()
            log.warning("circuit_changed", provider=name, old=old.value, new=new.value)

        self.breaker = CircuitBreaker(policy, now=now, on_transition=changed)
        self.pacing = asyncio.Lock()  # sends to one provider are admitted one at a time

    def set_share(self, fraction: float, now: float) -> None:
        self.bucket.set_rate(max(self.limits.rate_per_s * fraction, 1e-6), now)

    async def attempts(
        self, send: Send, check: Check | None, cost: float, deadline: float
    ) -> SendAccepted | Blocked:
        """Up to the policy's attempts at this provider; what the error says decides each next move."""
        ctx, m, name = self._ctx, self._ctx.metrics, self.name
        reason = reasons.provider_reason(name, reasons.UNAVAILABLE)
        maybe_sent = False
        for attempt in range(ctx.retry.max_attempts_per_provider):
            blocked = await self._admit(cost, deadline)
            if blocked is not None:
                return blocked
            if attempt:
                m.retries.labels(name).inc()
            if maybe_sent:
                m.possible_duplicates.inc()  # we could not learn whether the last attempt went out
            started, started_at = ctx.clock(), datetime.now(UTC)
            m.attempts.labels(name).inc()
            try:
                accepted = await send()
            except ProviderError as exc:
                m.provider_latency.labels(name, "error").observe(ctx.clock() - started)
                m.provider_errors.labels(name, type(exc).__name__).inc()
                reason = reasons.provider_reason(name, exc.code)
                if (blocked := self._judge(exc, reason)) is not None:
                    return blocked
                if exc.pause_s is not None:
                    maybe_sent = False
                    continue  # the bucket is paused: try again when it opens
                maybe_sent = exc.ambiguous
                if exc.ambiguous and check is not None:
                    found, known = await self.reconcile(check, started_at)
                    if found is not None:
                        return found
                    maybe_sent = not known
                delay = ctx.retry.next_delay(attempt + 1, now=ctx.clock(), deadline=deadline, rng=ctx.rng)
                if delay is None:
                    break  # attempts or time used up: no wait before failing over
                await ctx.sleep(delay)
                continue
            m.provider_latency.labels(name, "ok").observe(ctx.clock() - started)
            self.breaker.record_success(ctx.clock())
            return accepted
        return Blocked(reason, maybe_sent=maybe_sent)

    async def reconcile(self, check: Check, since: datetime) -> tuple[SendAccepted | None, bool]:
        """Ask the provider whether it took the message after all (an ambiguous error, a crash).

        Returns the message if it exists, and whether the answer is known.
        """
        try:
            found = await check(since)
        except ProviderError:
            self._ctx.metrics.reconciliations.labels(self.name, "unknown").inc()
            return None, False
        self._ctx.metrics.reconciliations.labels(self.name, "found" if found else "not_found").inc()
        return found, True

    async def _admit(self, cost: float, deadline: float) -> Blocked | None:
        """Wait for the provider's breaker and rate limit; or why this provider is given up on."""
        ctx = self._ctx
        if ctx.paused():
            return Blocked(DRAINING)
        now = ctx.clock()
        if not self.breaker.allow(now):  # the engine counts the failover that follows
            return Blocked(reasons.provider_reason(self.name, reasons.CIRCUIT_OPEN))
        async with self.pacing:
            if ctx.paused():
                return Blocked(DRAINING)
            booked = await self._group_wait(cost, deadline)
            now = ctx.clock()
            wait = self.bucket.reserve(cost, now) if booked is None else booked
            if now + wait > deadline:
                self.breaker.record_success(now)  # give back the probe slot: not the provider's fault
                return Blocked(reasons.provider_reason(self.name, reasons.RATE_LIMIT_DEADLINE))
            if wait > 0:
                ctx.metrics.rate_limit_wait.labels(self.name).inc(wait)
                await ctx.sleep(wait)
            pacer = self.group if booked is not None and self.group is not None else self.bucket
            pacer.sent(ctx.clock())  # a late wake-up earns no credit
        return None

    async def _group_wait(self, cost: float, deadline: float) -> float | None:
        """Seconds until this send's turn in the group's schedule, booking slots as needed (``inf``:
        not before the deadline); None: no group schedule, or it cannot be reached: pace alone."""
        if self.group is None or self._schedule is None:
            return None
        ctx = self._ctx
        while True:
            now = ctx.clock()
            start = max(now, self.bucket.paused_until)  # a 429's pause holds this instance's sends
            wait = self.group.take(cost, start)
            if wait is not None:
                return start - now + wait
            amount = self.group.booking(cost)
            horizon = deadline - now - amount / self.group.rate
            if horizon < 0:
                return math.inf
            try:
                booking = await self._schedule.book(self.name, amount, self.group.rate, horizon)
            except StoreUnavailable:
                if not self._schedule_down:
                    log.warning("rate_schedule_unavailable", provider=self.name, fallback="partition_share")
                self._schedule_down = True
                return None
            if self._schedule_down:
                log.info("rate_schedule_back", provider=self.name)
                self._schedule_down = False
            if booking is None:
                return math.inf  # the group has booked this provider past the deadline
            self.group.booked(ctx.clock() + booking.start_in_s, amount, at=booking.start_at)

    def _judge(self, exc: ProviderError, reason: str) -> Blocked | None:
        """Record what an error says about the provider; this step's end, or None to try it again."""
        now = self._ctx.clock()
        if exc.breaker_failure:
            self.breaker.record_failure(now)
        else:
            self.breaker.record_success(now)  # the provider answered: it works
        if exc.opted_out:
            return Blocked(reason, provider_side=False, opted_out=exc)
        if not exc.retriable:
            return Blocked(reason, no_more_sms=not exc.next_provider, provider_side=exc.provider_side)
        if exc.pause_s is not None:
            self.bucket.pause_until(now + exc.pause_s)
        return None
