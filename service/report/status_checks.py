"""The status look-up job: SMS sends left without a final status are asked about at their provider.

A delivery report lost for good (the service was down when the provider called back; Twilio does
not retry status callbacks) would leave an SMS ``sent`` for ever, and an undelivered one without
its email fallback. Each run leases the sends whose look-up is due (``due_status_checks``: two
instances never take the same one), asks the provider that sent each (Twilio: the message
resource; Infobip: its log by our messageId) and follows ``StatusCheckPolicy``: a final answer is
applied through ``DeliveryReports.reconciled``, the callbacks' own path (the same receipt, at most
once whichever comes first, the same email fallback); anything else is looked up again later,
and past the maximum age given up (counted, never recorded as a status).

Look-ups are rate-bounded apart from the sends: a token bucket per provider at a share of its
rate limit (split across instances like the sends' buckets), at most ``batch`` per run; none
while sends are paused (shutdown, rebalance) or while the provider's circuit is open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from service.domain.errors import ProviderError
from service.domain.ports import NotificationStore, SmsSender
from service.domain.ratelimit import TokenBucket
from service.domain.status_check import (
    Answer,
    Apply,
    AwaitingStatus,
    GiveUp,
    LookAgain,
    StatusCheckPolicy,
)
from service.logs import get_logger
from service.metrics import Metrics
from service.report.delivery_reports import DeliveryReports

log = get_logger(__name__)

DEFERRED = "deferred"
_BURST = 1.0  # look-ups are paced one at a time, like sends


def _now() -> datetime:
    return datetime.now(UTC)


class StatusChecks:
    def __init__(
        self,
        *,
        store: NotificationStore,
        reports: DeliveryReports,
        senders: Sequence[SmsSender],
        metrics: Metrics,
        policy: StatusCheckPolicy,
        rates: Mapping[str, float],
        batch: int = 100,
        lease_s: float = 120.0,
        paused: Callable[[], bool] = lambda: False,
        circuit_open: Callable[[str], bool] = lambda _provider: False,
        clock: Callable[[], datetime] = _now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``rates``: look-ups per second per provider for the whole group (this instance's share
        is set by ``set_share``)."""
        self._store = store
        self._reports = reports
        self._senders = {s.name: s for s in senders}
        self._metrics = metrics
        self._policy = policy
        self._batch = batch
        self._lease_s = lease_s
        self._paused = paused
        self._circuit_open = circuit_open
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rates = dict(rates)
        now = monotonic()
        self._buckets = {name: TokenBucket(rate, _BURST, now=now) for name, rate in self._rates.items()}

    def set_share(self, fraction: float) -> None:
        """This instance's share of the group's look-up rates (its share of the partitions)."""
        now = self._monotonic()
        for name, bucket in self._buckets.items():
            bucket.set_rate(max(self._rates[name] * fraction, 1e-6), now)

    async def run_once(self) -> int:
        """One run: lease the due look-ups and make them; returns how many were leased."""
        if self._paused():
            return 0
        leased = await self._store.due_status_checks(self._batch, self._lease_s, self._policy.after_s)
        started, spent = self._monotonic(), set[str]()
        for item in leased:
            provider = item.target.provider or "unknown"
            result = await self._check(item, provider, started, spent)
            self._metrics.status_reconciliations.labels(provider, result).inc()
        return len(leased)

    async def _check(self, item: AwaitingStatus, provider: str, started: float, spent: set[str]) -> str:
        sender = self._senders.get(provider)
        reference = item.target.reference
        if sender is None or reference is None or self._paused() or self._circuit_open(provider):
            # Cannot ask now (provider not configured, sends paused, its circuit open): like an
            # error, looked up again with backoff, and given up at the maximum age.
            answer, code, result = Answer.ERROR, None, DEFERRED
        elif provider in spent or not await self._admit(provider, started):
            # This run's budget for the provider is spent: the next run takes the rest.
            spent.add(provider)
            return await self._later(item, DEFERRED, 0.0)
        else:
            answer, code = await self._ask(sender, item, provider, reference)
            result = answer.value
        step = self._policy.after(answer, sent_at=item.sent_at, now=self._clock(), checks=item.checks)
        if isinstance(step, Apply) and reference is not None:
            applied = await self._reports.reconciled(provider, reference, delivered=step.delivered, code=code)
            log.info(
                "status_reconciled",
                notification_id=str(item.notification_id),
                provider=provider,
                answer=answer.value,
                result=applied,
            )
            return "stale" if applied == "stale" else answer.value
        if isinstance(step, GiveUp):
            await self._store.status_given_up(item.notification_id)
            log.warning(
                "status_check_gave_up",
                notification_id=str(item.notification_id),
                provider=provider,
                checks=item.checks,
                last_answer=answer.value,
            )
            return "gave_up"
        assert isinstance(step, LookAgain)  # noqa: S101  # Apply came with a reference
        return await self._later(item, result, step.after_s)

    async def _ask(
        self, sender: SmsSender, item: AwaitingStatus, provider: str, reference: str
    ) -> tuple[Answer, str | None]:
        try:
            status = await sender.delivery_status(item.message_id, reference=reference)
        except ProviderError as exc:
            log.warning(
                "status_check_failed",
                notification_id=str(item.notification_id),
                provider=provider,
                error=type(exc).__name__,
                code=exc.code,
            )
            return Answer.ERROR, None
        return (status.answer, status.code) if status is not None else (Answer.NOT_FOUND, None)

    async def _later(self, item: AwaitingStatus, result: str, after_s: float) -> str:
        await self._store.status_check_later(item.notification_id, after_s)
        return result

    async def _admit(self, provider: str, started: float) -> bool:
        """Wait for the provider's look-up budget; False if that would outlast half the lease."""
        bucket = self._buckets.get(provider)
        if bucket is None:
            return True
        now = self._monotonic()
        wait = bucket.reserve(1.0, now)
        if now + wait - started > self._lease_s / 2:
            return False  # the one token reserved for it stays spent: a small debt, never an excess
        if wait > 0:
            await self._sleep(wait)
        bucket.sent(self._monotonic())
        return True
