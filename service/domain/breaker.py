"""A circuit breaker per provider, with hysteresis so traffic does not flap between providers.

GOV.UK Notify switched SMS providers on a few failures and had to raise its thresholds because
traffic flapped. Here every step needs evidence, and each relapse is punished more:

- CLOSED -> OPEN only when the window of the last ``window`` results holds at least
  ``min_calls`` results AND their failure ratio is at least ``failure_ratio``.
- OPEN -> HALF_OPEN once the open period has elapsed (seen by ``state``/``allow``).
- HALF_OPEN lets at most ``half_open_probes`` probes run at once; it closes only after
  ``close_after_successes`` consecutive successful probes, and any probe failure re-opens it
  with the open period doubled, capped at ``max_open_for_s``.
- On closing, the result window is cleared (a fresh start) and a probation begins: opening again
  before ``window`` calls have been recorded while closed is also a relapse and doubles the period.
  Only after a full window of calls without a re-open does the period go back to ``open_for_s``.

The clock is passed in (``now``: monotonic seconds). Results that arrive while OPEN come from
calls started before it opened and are ignored.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def level(self) -> int:
        """Value for a Prometheus gauge: closed 0, half_open 1, open 2."""
        return _LEVEL[self]


_LEVEL = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

Transition = Callable[[BreakerState, BreakerState], None]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window: int = 20  # the last N call results considered
    min_calls: int = 10  # results needed in the window before it may open
    failure_ratio: float = 0.5
    open_for_s: float = 15.0
    max_open_for_s: float = 300.0
    half_open_probes: int = 3  # probes allowed in flight at once while half-open
    close_after_successes: int = 3  # consecutive successful probes needed to close

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if not 1 <= self.min_calls <= self.window:
            raise ValueError("min_calls must be between 1 and window")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if not self.open_for_s > 0:
            raise ValueError("open_for_s must be > 0")
        if not self.max_open_for_s >= self.open_for_s:
            raise ValueError("max_open_for_s must be >= open_for_s")
        if self.half_open_probes < 1:
            raise ValueError("half_open_probes must be >= 1")
        if self.close_after_successes < 1:
            raise ValueError("close_after_successes must be >= 1")


class CircuitBreaker:
    """``allow(now)`` before a call, then ``record_success(now)`` or ``record_failure(now)``."""

    def __init__(self, policy: BreakerPolicy, *, now: float, on_transition: Transition | None = None) -> None:
        self.policy = policy
        self.transitions = 0
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._results: deque[bool] = deque(maxlen=policy.window)  # True: the call failed
        self._open_for = policy.open_for_s
        self._opened_at = now
        self._in_flight = 0  # half-open probes started and not yet reported
        self._successes = 0  # consecutive successful probes
        self._probation: int | None = None  # calls left before a relapse stops doubling the period

    @property
    def open_for_s(self) -> float:
        """The length of the current (or next) open period."""
        return self._open_for

    def state(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now >= self._opened_at + self._open_for:
            self._in_flight = 0
            self._successes = 0
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a call may go out; in HALF_OPEN a True answer starts a probe."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._in_flight < self.policy.half_open_probes:
            self._in_flight += 1
            return True
        return False

    def record_success(self, now: float) -> None:
        state = self.state(now)
        if state is BreakerState.CLOSED:
            self._record_closed(failed=False)
        elif state is BreakerState.HALF_OPEN:
            self._in_flight = max(0, self._in_flight - 1)
            self._successes += 1
            if self._successes >= self.policy.close_after_successes:
                self._close()

    def record_failure(self, now: float) -> None:
        state = self.state(now)
        if state is BreakerState.CLOSED:
            self._record_closed(failed=True)
            calls = len(self._results)
            if calls >= self.policy.min_calls and sum(self._results) / calls >= self.policy.failure_ratio:
                self._open(now, relapse=self._probation is not None)
        elif state is BreakerState.HALF_OPEN:
            self._open(now, relapse=True)

    def _record_closed(self, *, failed: bool) -> None:
        self._results.append(failed)
        if self._probation is not None:
            self._probation -= 1
            if self._probation <= 0:
                self._probation = None
                self._open_for = self.policy.open_for_s

    def _open(self, now: float, *, relapse: bool) -> None:
        if relapse:
            self._open_for = min(self._open_for * 2, self.policy.max_open_for_s)
        self._opened_at = now
        self._probation = None
        self._move(BreakerState.OPEN)

    def _close(self) -> None:
        self._results.clear()
        self._probation = self.policy.window
        self._move(BreakerState.CLOSED)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self.transitions += 1
        if self._on_transition is not None:
            self._on_transition(old, new)
