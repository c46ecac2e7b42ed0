from __future__ import annotations

import random
import re
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.backoff import RetryPolicy, backoff_delay, within_deadline


class HighestRandom(random.Random):
    """Always draws the top of the range, to read the ceiling exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6), (4, 3.2), (5, 5.0), (6, 5.0), (100, 5.0), (10_000, 5.0)],
)
def test_ceiling_doubles_per_attempt_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert backoff_delay(attempt, rng=HighestRandom()) == pytest.approx(ceiling)


@pytest.mark.parametrize("attempt", [0, 2, 5, 50])
def test_full_jitter_spreads_delays_over_the_whole_range(attempt: int) -> None:
    rng = random.Random(42)
    ceiling = min(5.0, 0.2 * 2**attempt)
    delays = [backoff_delay(attempt, rng=rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling
    assert statistics.fmean(delays) == pytest.approx(ceiling / 2, rel=0.05)


def test_same_seed_gives_the_same_delays() -> None:
    first = [backoff_delay(n, rng=random.Random(7)) for n in range(8)]
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [backoff_delay(n, rng=rng_a) for n in range(8)] == [backoff_delay(n, rng=rng_b) for n in range(8)]
    assert first == [backoff_delay(n, rng=random.Random(7)) for n in range(8)]


def test_custom_base_and_cap() -> None:
    assert backoff_delay(3, base_s=1.0, cap_s=30.0, rng=HighestRandom()) == 8.0
    assert backoff_delay(3, base_s=1.0, cap_s=0.0, rng=HighestRandom()) == 0.0


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s", "message"),
    [
        (-1, 0.2, 5.0, "attempt must be >= 0"),
        (0, 0.0, 5.0, "base_s must be > 0 and cap_s >= 0"),
        (0, 0.2, -1.0, "base_s must be > 0 and cap_s >= 0"),
    ],
)
def test_invalid_arguments_are_refused(attempt: int, base_s: float, cap_s: float, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rng=random.Random(0))


@given(
    attempt=st.integers(0, 100_000),
    base_s=st.floats(0.001, 10.0),
    cap_s=st.floats(0.0, 600.0),
    seed=st.integers(0, 2**32),
)
def test_property_delay_stays_within_bounds(attempt: int, base_s: float, cap_s: float, seed: int) -> None:
    delay = backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap_s, base_s * 2 ** min(attempt, 62))


@pytest.mark.parametrize(
    ("now", "deadline", "delay", "ok"),
    [
        (0.0, 120.0, 5.0, True),
        (100.0, 120.0, 19.9, True),
        (100.0, 120.0, 20.0, False),  # an attempt starting at the deadline is too late
        (100.0, 120.0, 25.0, False),
        (130.0, 120.0, 0.0, False),
    ],
)
def test_within_deadline(now: float, deadline: float, delay: float, ok: bool) -> None:
    assert within_deadline(now, deadline, delay) is ok


def test_retry_policy_defaults_and_deadline() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts_per_provider, policy.base_s, policy.cap_s) == (3, 0.2, 5.0)
    assert policy.deadline(1000.0) == 1120.0


@pytest.mark.parametrize(
    ("attempts_made", "now", "expected"),
    [
        (1, 0.0, 0.2),  # after the first attempt: the attempt-0 ceiling
        (2, 0.0, 0.4),
        (3, 0.0, None),  # this provider's allowance is used up
        (1, 119.9, None),  # the wait would reach past the deadline
    ],
)
def test_retry_policy_next_delay(attempts_made: int, now: float, expected: float | None) -> None:
    policy = RetryPolicy()
    delay = policy.next_delay(attempts_made, now=now, deadline=120.0, rng=HighestRandom())
    assert delay == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_attempts_per_provider": 0}, "max_attempts_per_provider must be >= 1"),
        ({"base_s": 0.0}, "base_s must be > 0 and cap_s >= 0"),
        ({"cap_s": -1.0}, "base_s must be > 0 and cap_s >= 0"),
        ({"message_deadline_s": 0.0}, "message_deadline_s must be > 0"),
    ],
)
def test_invalid_retry_policy_is_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RetryPolicy(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [{"max_attempts_per_provider": 1}, {"cap_s": 0.0}, {"base_s": 0.01}, {"message_deadline_s": 0.5}],
)
def test_the_smallest_retry_policies_are_allowed(changes: dict[str, float]) -> None:
    RetryPolicy(**changes)  # type: ignore[arg-type]


def test_next_delay_needs_a_previous_attempt() -> None:
    message = "attempts_made must be >= 1: a retry follows an attempt"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RetryPolicy().next_delay(0, now=0.0, deadline=10.0, rng=random.Random(0))


@pytest.mark.parametrize(("attempts_made", "ceiling"), [(1, 10.0), (2, 20.0), (3, 30.0), (4, 30.0)])
def test_next_delay_doubles_from_the_policys_base_up_to_its_cap(attempts_made: int, ceiling: float) -> None:
    policy = RetryPolicy(max_attempts_per_provider=9, base_s=10.0, cap_s=30.0, message_deadline_s=600.0)
    assert policy.next_delay(attempts_made, now=0.0, deadline=600.0, rng=HighestRandom()) == ceiling
