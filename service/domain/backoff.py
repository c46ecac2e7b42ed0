"""Retry delays: exponential backoff with "full jitter", bounded by a per-message deadline.

Full jitter draws the delay uniformly from ``[0, min(cap, base * 2**attempt)]``, so retries of
many messages that failed together spread out instead of arriving again in lockstep. The random
source is passed in, so a seeded ``random.Random`` makes the delays reproducible in tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2**62 already dwarfs any sensible cap; clamping keeps huge attempt numbers from overflowing a float.
_MAX_EXPONENT = 62


def exponential(attempt: int, *, base_s: float, cap_s: float) -> float:
    """``min(cap, base * 2**attempt)``: the doubling wait, without jitter (0 for the first)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not (base_s > 0 and cap_s >= 0):
        raise ValueError("base_s must be > 0 and cap_s >= 0")
    return min(cap_s, base_s * 2.0 ** min(attempt, _MAX_EXPONENT))


def backoff_delay(attempt: int, *, base_s: float = 0.2, cap_s: float = 5.0, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
    return rng.uniform(0.0, exponential(attempt, base_s=base_s, cap_s=cap_s))


def within_deadline(now: float, deadline: float, delay: float) -> bool:
    """Whether an attempt made after waiting ``delay`` would still start before ``deadline``.

    Strictly before: an attempt starting at the deadline itself is already too late.
    """
    return now + delay < deadline


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one message is retried."""

    max_attempts_per_provider: int = 3
    base_s: float = 0.2
    cap_s: float = 5.0
    message_deadline_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts_per_provider < 1:
            raise ValueError("max_attempts_per_provider must be >= 1")
        if not (self.base_s > 0 and self.cap_s >= 0):
            raise ValueError("base_s must be > 0 and cap_s >= 0")
        if not self.message_deadline_s > 0:
            raise ValueError("message_deadline_s must be > 0")

    def deadline(self, first_seen: float) -> float:
        """The time after which a message first seen at ``first_seen`` is no longer attempted."""
        return first_seen + self.message_deadline_s

    def next_delay(
        self, attempts_made: int, *, now: float, deadline: float, rng: random.Random
    ) -> float | None:
        """The wait before the next attempt at the same provider, or None to stop trying it.

        None when ``attempts_made`` attempts already used up the provider's allowance, or when
        the wait would reach past ``deadline``.
        """
        if attempts_made < 1:
            raise ValueError("attempts_made must be >= 1: a retry follows an attempt")
        if attempts_made >= self.max_attempts_per_provider:
            return None
        delay = backoff_delay(attempts_made - 1, base_s=self.base_s, cap_s=self.cap_s, rng=rng)
        return delay if within_deadline(now, deadline, delay) else None
