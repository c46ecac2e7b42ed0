"""The consumer watchdog's rule: stalled = no fetch for longer than the limit while records wait.

A quiet topic is not a stall (nothing waits), and a long batch is not one either while it stays
under the limit; the limit must exceed the longest legitimate gap between fetches (a batch at
the provider rate limit, the longest retry or hold backoff).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StallWatch:
    limit_s: float
    last_fetch: float

    def fetched(self, now: float) -> None:
        self.last_fetch = now

    def idle_s(self, now: float) -> float:
        return max(0.0, now - self.last_fetch)

    def stalled(self, now: float, lag: int) -> bool:
        return lag > 0 and self.idle_s(now) > self.limit_s
