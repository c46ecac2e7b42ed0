from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable

import pytest

from service.domain.breaker import BreakerPolicy, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def feed(breaker: CircuitBreaker, outcomes: str, now: float = 0.0) -> None:
    """Record results at one instant: "F" a failure, "S" a success."""
    for outcome in outcomes:
        if outcome == "F":
            breaker.record_failure(now)
        else:
            breaker.record_success(now)


def opened(
    policy: BreakerPolicy | None = None,
) -> tuple[CircuitBreaker, list[tuple[BreakerState, BreakerState]]]:
    seen: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        policy or BreakerPolicy(), now=0.0, on_transition=lambda a, b: seen.append((a, b))
    )
    feed(breaker, "F" * 10)
    assert breaker.state(0.0) is OPEN
    return breaker, seen


def probe_fails(breaker: CircuitBreaker, now: float) -> None:
    assert breaker.allow(now)
    breaker.record_failure(now)


def probe_closes(breaker: CircuitBreaker, now: float) -> None:
    for _ in range(3):
        assert breaker.allow(now)
        breaker.record_success(now)
    assert breaker.state(now) is CLOSED


def test_state_levels_for_the_gauge() -> None:
    assert [s.level for s in (CLOSED, HALF_OPEN, OPEN)] == [0, 1, 2]
    assert str(HALF_OPEN) == "half_open"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"min_calls": 0}, "min_calls must be between 1 and window"),
        ({"min_calls": 21}, "min_calls must be between 1 and window"),
        ({"failure_ratio": 0.0}, r"failure_ratio must be in \(0, 1\]"),
        ({"failure_ratio": 1.5}, r"failure_ratio must be in \(0, 1\]"),
        ({"open_for_s": 0.0}, "open_for_s must be > 0"),
        ({"max_open_for_s": 10.0}, "max_open_for_s must be >= open_for_s"),
        ({"half_open_probes": 0}, "half_open_probes must be >= 1"),
        ({"close_after_successes": 0}, "close_after_successes must be >= 1"),
    ],
)
def test_invalid_policy_is_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        BreakerPolicy(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "edge",
    [
        {"window": 1, "min_calls": 1},
        {"window": 5, "min_calls": 5},
        {"failure_ratio": 1.0},
        {"open_for_s": 0.5, "max_open_for_s": 0.5},
        {"half_open_probes": 1, "close_after_successes": 1},
    ],
)
def test_a_policy_at_the_edge_of_what_is_allowed_is_accepted(edge: dict[str, float]) -> None:
    BreakerPolicy(**edge)  # type: ignore[arg-type]


# --- opening -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ("F" * 9, CLOSED),  # every call failed, but fewer than min_calls results
        ("F" * 10, OPEN),
        ("SF" * 4, CLOSED),  # 50% but only 8 results
        ("SF" * 4 + "S", CLOSED),  # 4/9
        ("SF" * 5, OPEN),  # 5/10 at exactly min_calls and the ratio
        ("SSF" * 6 + "SS", CLOSED),  # 6/20 = 30%
        ("S" * 20 + "F" * 9, CLOSED),  # 9/20 in the window
        ("S" * 20 + "F" * 10, OPEN),  # 10/20: the old successes slid out of the window
        ("F" * 9 + "S" * 11, CLOSED),  # 9/20: the 9 failures never reached a 50% ratio with 10 calls
    ],
)
def test_opens_at_the_threshold_and_not_before(outcomes: str, state: BreakerState) -> None:
    breaker = CircuitBreaker(BreakerPolicy(), now=0.0)
    feed(breaker, outcomes)
    assert breaker.state(0.0) is state
    assert breaker.allow(0.0) is (state is CLOSED)


def test_stays_open_for_its_period_then_goes_half_open() -> None:
    breaker, seen = opened()
    for now in (0.0, 5.0, 14.999):
        assert not breaker.allow(now)
        assert breaker.state(now) is OPEN
    assert breaker.state(15.0) is HALF_OPEN
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert breaker.transitions == 2


def test_results_arriving_while_open_are_ignored() -> None:
    breaker, _ = opened()
    feed(breaker, "S" * 50, now=1.0)  # late answers to calls started before it opened
    assert breaker.state(1.0) is OPEN


# --- half-open ---------------------------------------------------------------------------------


def test_half_open_allows_only_the_probe_limit_in_flight() -> None:
    breaker, _ = opened()
    assert [breaker.allow(15.0) for _ in range(5)] == [True, True, True, False, False]
    breaker.record_success(15.1)  # one probe answered: its slot frees up
    assert breaker.allow(15.1)
    assert not breaker.allow(15.1)


def test_closes_only_after_consecutive_successful_probes() -> None:
    breaker, seen = opened()
    for i in range(2):
        assert breaker.allow(15.0)
        breaker.record_success(15.0)
        assert breaker.state(15.0) is HALF_OPEN, i
    assert breaker.allow(15.0)
    breaker.record_success(15.0)
    assert breaker.state(15.0) is CLOSED
    assert seen[-1] == (HALF_OPEN, CLOSED)


def test_closing_clears_the_window() -> None:
    breaker, _ = opened()
    probe_closes(breaker, 15.0)
    feed(breaker, "F" * 9, now=16.0)  # the 10 old failures are forgotten
    assert breaker.state(16.0) is CLOSED


def test_each_probe_failure_doubles_the_open_period_up_to_the_cap() -> None:
    breaker, _ = opened()
    now = 0.0
    periods = [breaker.open_for_s]
    for _ in range(6):
        now += breaker.open_for_s
        assert breaker.state(now - 0.001) is OPEN
        probe_fails(breaker, now)
        assert breaker.state(now) is OPEN
        periods.append(breaker.open_for_s)
    assert periods == [15.0, 30.0, 60.0, 120.0, 240.0, 300.0, 300.0]


def test_doubled_period_resets_only_after_a_full_window_closed() -> None:
    breaker, _ = opened()
    probe_fails(breaker, 15.0)  # re-opened for 30 s
    probe_closes(breaker, 45.0)
    assert breaker.open_for_s == 30.0
    feed(breaker, "S" * 19, now=46.0)
    assert breaker.open_for_s == 30.0  # still on probation
    feed(breaker, "S", now=46.0)
    assert breaker.open_for_s == 15.0  # a full window of calls without a re-open
    feed(breaker, "F" * 20, now=47.0)
    assert breaker.state(47.0) is OPEN
    assert breaker.state(47.0 + 15.0) is HALF_OPEN


def test_relapse_while_on_probation_doubles_the_period() -> None:
    breaker, _ = opened()
    probe_closes(breaker, 15.0)
    feed(breaker, "F" * 10, now=16.0)  # opens again within the first window after closing
    assert breaker.state(16.0) is OPEN
    assert breaker.open_for_s == 30.0
    assert breaker.state(16.0 + 29.9) is OPEN


def test_first_open_uses_the_base_period() -> None:
    breaker, _ = opened()
    assert breaker.open_for_s == 15.0


# --- flapping ----------------------------------------------------------------------------------


class NaiveBreaker:
    """What flaps: opens after 3 failures in a row, closes on the first success after 1 s."""

    def __init__(self) -> None:
        self.recent: deque[bool] = deque(maxlen=3)
        self.open_since: float | None = None
        self.switches = 0

    def allow(self, now: float) -> bool:
        return self.open_since is None or now - self.open_since >= 1.0

    def record(self, now: float, *, failed: bool) -> None:
        if self.open_since is not None:
            if not failed:
                self.open_since = None
                self.recent.clear()
                self.switches += 1
            return
        self.recent.append(failed)
        if len(self.recent) == 3 and all(self.recent):
            self.open_since = now
            self.switches += 1


def run(
    pattern: str, ticks: int, step: float, policy: BreakerPolicy | None = None
) -> tuple[CircuitBreaker, NaiveBreaker, int]:
    """Send one call per tick through both breakers; results follow ``pattern`` in a cycle."""
    breaker = CircuitBreaker(policy or BreakerPolicy(), now=0.0)
    naive = NaiveBreaker()
    opens = 0
    results: Iterable[str] = itertools.cycle(pattern)
    for tick, outcome in zip(range(ticks), results, strict=False):
        now = tick * step
        failed = outcome == "F"
        if naive.allow(now):
            naive.record(now, failed=failed)
        if breaker.allow(now):
            before = breaker.state(now)
            if failed:
                breaker.record_failure(now)
            else:
                breaker.record_success(now)
            opens += before is not OPEN and breaker.state(now) is OPEN
    return breaker, naive, opens


def test_no_flapping_under_a_30_percent_failure_rate() -> None:
    # Failures come in runs of three: a consecutive-failure breaker opens every ten calls.
    breaker, naive, opens = run("FFFSSSSSSS", ticks=1000, step=0.1)
    assert naive.switches >= 100
    assert opens == 0
    assert breaker.transitions == 0
    assert breaker.state(100.0) is CLOSED


def test_a_half_broken_provider_is_retried_ever_more_rarely() -> None:
    # One hour of calls every 100 ms against a provider failing every other call.
    breaker, _, opens = run("FS", ticks=36_000, step=0.1)
    # Open periods 15, 30, 60, 120, 240 then 300 s: about 16 openings in the hour.
    assert opens <= 17
    assert breaker.open_for_s == 300.0
    # Without hysteresis (close on one probe, no doubling) it would switch back every ~15 s.
    flappy = BreakerPolicy(open_for_s=15.0, max_open_for_s=15.0, half_open_probes=1, close_after_successes=1)
    _, _, flappy_opens = run("FS", ticks=36_000, step=0.1, policy=flappy)
    assert flappy_opens >= 100
