"""A token bucket counted in SMS segments, with the clock passed in (``now``: monotonic seconds).

How a caller uses it: ``wait = bucket.reserve(segments, now)``, then send after ``wait`` seconds.
A reservation takes its tokens at once, going into debt if need be, so reservations queue up in
the order they were made (FIFO) and each later one waits for the debt of those before it.

The guarantee: if every caller sends exactly when its wait ends, then for any window of length
``T`` the segments sent inside it total at most ``C + rate * T``, where ``C`` is ``burst``, or the
largest single reservation sent in the window when that is bigger. A reservation larger than
``burst`` (a 3-segment SMS with burst 1) is allowed and waits until the bucket would hold all of
it, but it goes out whole, at one instant, so no schedule could bound it by ``burst`` alone.
Waits already returned are never revised: ``pause_until`` and ``set_rate`` only affect
reservations made after them.

Sharing one provider limit across instances: each instance runs its bucket at
``share_of(limit, assigned, total)``, i.e. ``limit * assigned / total`` partitions, so the group
together stays under the provider's limit. During a rebalance an instance that loses partitions
lowers its rate when they are revoked and one that gains them raises it when they are assigned,
so the sum can briefly fall below the limit but never rise above it, as long as every instance
calls ``set_rate`` on each assignment. Bursts are per instance: the group's burst is the sum.
"""

from __future__ import annotations

import math


def share_of(total_rate: float, assigned_partitions: int, total_partitions: int) -> float:
    """This instance's share of a group-wide rate, in proportion to the partitions it consumes.

    An instance with no partitions gets ``0.0`` and sends nothing (it has nothing to consume).
    ``total_partitions == 0`` means the group size is not known yet: the whole rate is returned.
    """
    if total_rate < 0 or assigned_partitions < 0 or total_partitions < 0:
        raise ValueError("rates and partition counts must not be negative")
    if total_partitions == 0:
        return total_rate
    if assigned_partitions > total_partitions:
        raise ValueError("assigned_partitions cannot exceed total_partitions")
    return total_rate * assigned_partitions / total_partitions


class TokenBucket:
    """Rate ``rate_per_s`` segments per second, holding at most ``burst``; starts full.

    State: ``_tokens`` is the level as of ``_last`` (negative while reservations are queued).
    ``_last`` may lie in the future, at the end of a pause, once a reservation was made during it.
    A rate of 0 sends nothing: ``reserve`` then returns ``math.inf`` and takes no tokens.
    """

    __slots__ = ("_burst", "_last", "_paused_until", "_rate", "_tokens")

    def __init__(self, rate_per_s: float, burst: float, *, now: float) -> None:
        _check_rate(rate_per_s)
        if not (burst > 0 and math.isfinite(burst)):
            raise ValueError("burst must be a positive number")
        self._rate = rate_per_s
        self._burst = burst
        self._tokens = burst
        self._last = now
        self._paused_until = -math.inf

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def paused_until(self) -> float:
        """No reservation made from now on may be sent before this time (``-inf``: no pause)."""
        return self._paused_until

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount`` tokens and return the seconds to wait before sending (0.0: send now)."""
        if not (amount > 0 and math.isfinite(amount)):
            raise ValueError("amount must be a positive number")
        if self._rate == 0:
            return math.inf
        # Nothing is sendable before the pause ends; tokens accrue up to ``burst`` meanwhile.
        start = max(now, self._paused_until, self._last)
        self._settle(start)
        send_at = start
        if self._tokens < amount:
            send_at += (amount - self._tokens) / self._rate
        self._tokens -= amount
        return max(0.0, send_at - now)

    def sent(self, now: float) -> None:
        """The caller actually sent at ``now``: it gets no credit for having woken late.

        A waiter that wakes after its time (a busy event loop) would otherwise leave credit in the
        bucket for the next one, and the two would go out closer together than the rate allows, as
        the provider would measure it. Callers that send one at a time through ``reserve`` and
        ``sent`` keep every gap at least ``amount / rate``.
        """
        self._settle(now)
        self._tokens = min(self._tokens, 0.0)

    def pause_until(self, t: float) -> None:
        """A provider's 429 Retry-After: later reservations are not sendable before ``t``.

        A pause never shortens a later pause already in force.
        """
        self._paused_until = max(self._paused_until, t)

    def set_rate(self, rate_per_s: float, now: float) -> None:
        """Change the rate, settling what accrued so far at the old rate first.

        A debt (reservations already queued) is kept as a time, not as tokens: the queue still
        drains when the old rate said it would, so new reservations at a higher rate do not
        overlap the ones already promised. With a rate of 0 on either side the debt is kept as is.
        """
        _check_rate(rate_per_s)
        self._settle(now)
        if self._tokens < 0 and self._rate > 0 and rate_per_s > 0:
            self._tokens *= rate_per_s / self._rate
        self._rate = rate_per_s

    def _settle(self, t: float) -> None:
        if t > self._last:
            self._tokens = min(self._burst, self._tokens + self._rate * (t - self._last))
            self._last = t


def _check_rate(rate_per_s: float) -> None:
    if not (rate_per_s >= 0 and math.isfinite(rate_per_s)):
        raise ValueError("rate_per_s must be a finite number >= 0")
