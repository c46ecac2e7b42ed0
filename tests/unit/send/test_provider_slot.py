"""One provider's slot on its own: admission, what each error means, reconciliation."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from service.domain.backoff import RetryPolicy
from service.domain.breaker import BreakerPolicy, BreakerState
from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
    StoreUnavailable,
)
from service.domain.lifecycle import DRAINING
from service.domain.ports import Booking, RateSchedule, SendAccepted
from service.metrics import Metrics
from service.send.provider_slot import Blocked, ProviderLimits, ProviderSlot, SlotContext
from service.testing import FakeClock

OK = SendAccepted("p", "ID1", "queued")
DEADLINE = 1060.0  # the clock starts at 1000


class Slot:
    """A slot for provider "p" and a scripted provider: ``script`` is raised or returned in turn."""

    def __init__(
        self,
        *script: ProviderError | SendAccepted,
        limits: ProviderLimits | None = None,
        schedule: RateSchedule | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.paused = False
        self.script = list(script)
        self.calls = 0
        self.found: SendAccepted | ProviderError | None = None  # what a look-up answers
        ctx = SlotContext(
            RetryPolicy(max_attempts_per_provider=3, base_s=0.1, cap_s=1.0, message_deadline_s=60),
            self.metrics,
            self.clock,
            self.clock.sleep,
            random.Random(3),
            paused=lambda: self.paused,
        )
        policy = BreakerPolicy(window=10, min_calls=4, failure_ratio=0.5, open_for_s=30)
        self.slot = ProviderSlot(
            "p", limits or ProviderLimits(1e9, 1e9), policy, self.clock(), ctx, schedule=schedule
        )

    async def send(self) -> SendAccepted:
        self.calls += 1
        step = self.script.pop(0) if self.script else OK
        if isinstance(step, ProviderError):
            raise step
        return step

    async def check(self, since: datetime) -> SendAccepted | None:
        if isinstance(self.found, ProviderError):
            raise self.found
        return self.found

    async def attempts(self, cost: float = 1.0, deadline: float = DEADLINE) -> SendAccepted | Blocked:
        return await self.slot.attempts(self.send, self.check, cost, deadline)

    def circuit(self) -> BreakerState:
        return self.slot.breaker.state(self.clock())

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_paused_slot_calls_nothing_and_says_draining() -> None:
    s = Slot()
    s.paused = True
    assert await s.attempts() == Blocked(DRAINING)
    assert s.calls == 0


async def test_a_transient_error_is_retried_after_a_backoff() -> None:
    s = Slot(ProviderUnavailable("p", "503"))
    assert await s.attempts() == OK
    assert s.calls == 2
    assert len(s.clock.slept) == 1
    assert s.metric("notifier_provider_retries_total", provider="p") == 1


async def test_out_of_attempts_ends_the_step_with_the_last_error_and_unknown_fate() -> None:
    s = Slot(*(ProviderUnavailable("p", "503") for _ in range(3)))
    s.found = ProviderUnavailable("p", "network")  # the look-up cannot say either
    blocked = await s.attempts()
    assert blocked == Blocked("p_503", maybe_sent=True)
    assert s.calls == 3
    assert s.metric("notifier_reconciliations_total", provider="p", result="unknown") == 3


async def test_an_ambiguous_error_whose_message_the_provider_holds_is_the_send() -> None:
    s = Slot(ProviderUnavailable("p", "timeout"))
    s.found = SendAccepted("p", "EARLIER", "queued")
    assert await s.attempts() == s.found
    assert s.calls == 1  # no second send
    assert s.metric("notifier_reconciliations_total", provider="p", result="found") == 1


async def test_a_rate_limit_pauses_the_provider_then_retries_without_backoff() -> None:
    s = Slot(RateLimited("p", "429", retry_after=7))
    assert await s.attempts() == OK
    assert s.clock.slept == [pytest.approx(7)]  # the pause, and no backoff on top
    assert s.circuit() is BreakerState.CLOSED


async def test_a_permanent_error_ends_the_step_and_says_where_to_go_next() -> None:
    assert await Slot(InvalidRecipient("p", "21211")).attempts() == Blocked(
        "p_21211", no_more_sms=True, provider_side=False
    )
    assert await Slot(ContentRejected("p", "30007")).attempts() == Blocked("p_30007", provider_side=False)


async def test_an_opt_out_stops_with_the_error() -> None:
    exc = RecipientOptedOut("p", "21610")
    assert await Slot(exc).attempts() == Blocked("p_21610", provider_side=False, opted_out=exc)


async def test_a_rate_limit_wait_past_the_deadline_gives_the_step_up() -> None:
    s = Slot(limits=ProviderLimits(rate_per_s=1, burst=1))
    assert await s.attempts() == OK
    assert await s.attempts(deadline=s.clock() + 0.5) == Blocked("p_rate_limit_deadline")
    assert s.calls == 1


async def test_failures_open_the_circuit_and_an_open_circuit_calls_nothing() -> None:
    s = Slot(*(ProviderUnavailable("p", "503") for _ in range(6)))
    assert await s.attempts() == Blocked("p_503", maybe_sent=False)  # 3 failures: not yet 4 calls
    assert s.circuit() is BreakerState.CLOSED
    assert await s.attempts() == Blocked("p_circuit_open")  # the 4th failure opened it
    assert s.calls == 4
    assert s.circuit() is BreakerState.OPEN
    # The skip is not a failover of its own: the engine counts the move to the next step, once.
    assert (
        s.metrics.registry.get_sample_value(
            "notifier_failovers_total", {"provider": "p", "to": "circuit_open"}
        )
        is None
    )


class Schedule:
    """The group's schedule as one other instance shares it: ``others`` segments booked before each
    of ours; ``down``: the database does not answer."""

    def __init__(self, clock: FakeClock, others: float = 0.0) -> None:
        self.clock, self.others = clock, others
        self.next_free = clock()
        self.down = False
        self.booked: list[tuple[float, float]] = []

    async def book(self, provider: str, amount: float, rate_per_s: float, horizon_s: float) -> Booking | None:
        if self.down:
            raise StoreUnavailable("database: gone")
        now = self.clock()
        self.next_free = max(self.next_free, now) + self.others / rate_per_s
        if self.next_free > now + horizon_s:
            return None
        start = self.next_free
        self.next_free += amount / rate_per_s
        self.booked.append((start, amount))
        return Booking(start - now, start + 5000.0)  # the schedule's clock is not ours


async def test_with_a_group_schedule_sends_go_out_in_the_slots_it_booked_at_the_rate() -> None:
    s = Slot(limits=ProviderLimits(100.0, 10.0), schedule=(sched := Schedule(FakeClock(), others=10.0)))
    sched.clock = clock = s.clock
    sent = []
    for _ in range(12):
        assert await s.slot.attempts(s.send, None, 2.0, DEADLINE + 1000) is OK
        sent.append(clock())
    # Another instance books 10 segments before each of our 10: our slots are every other 0.1 s.
    assert sched.booked[:2] == [(pytest.approx(1000.1), 10.0), (pytest.approx(1000.3), 10.0)]
    assert sent[:6] == pytest.approx([1000.1, 1000.12, 1000.14, 1000.16, 1000.18, 1000.3])
    assert s.slot.bucket.rate == 100.0  # the local bucket was not used


async def test_a_group_schedule_booked_past_the_deadline_blocks_the_send_for_the_next_step() -> None:
    s = Slot(limits=ProviderLimits(100.0, 10.0), schedule=(sched := Schedule(FakeClock(), others=1e5)))
    sched.clock = s.clock
    blocked = await s.slot.attempts(s.send, None, 2.0, DEADLINE)
    assert blocked == Blocked("p_rate_limit_deadline")
    assert s.calls == 0


async def test_when_the_group_schedule_cannot_be_reached_the_instance_paces_alone_at_its_share() -> None:
    s = Slot(limits=ProviderLimits(100.0, 1.0), schedule=(sched := Schedule(FakeClock())))
    sched.clock, sched.down = s.clock, True
    s.slot.set_share(0.5, s.clock())  # half the partitions: 50 segments/s
    for _ in range(3):
        assert await s.slot.attempts(s.send, None, 1.0, DEADLINE) is OK
    assert s.clock.slept == pytest.approx([0.02, 0.02])  # the local bucket: 1 segment / 50 per s
    sched.down = False
    assert await s.slot.attempts(s.send, None, 1.0, DEADLINE) is OK
    assert sched.booked  # back on the schedule once it answers
