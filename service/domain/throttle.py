"""Throttling of failed sign-ins: a fixed window per client, a cap on audited failures, bounded memory.

Pure: the caller passes ``now`` (monotonic seconds).

- ``refused(client, now)``: a client with ``per_client`` failures in its window is refused
  (every attempt, right or wrong) until the window ends; ``Refusal.first`` is true once per
  window, so a caller that audits refusals writes one row per client and window.
- ``failed(client, now)`` counts a failure and says whether to audit it: the first ``total``
  failures of a window (from everyone) are audited one by one, the next one as a summary, the
  rest not at all. Sign-in is by a random token only (there is no account name to throttle by),
  so the global cap bounds what an attacker rotating addresses can write, without refusing the
  staff whose tokens are right.
- The table of clients never holds more than ``max_clients`` windows (the oldest go first).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

Audit = Literal["row", "summary", "none"]


@dataclass(frozen=True, slots=True)
class Refusal:
    retry_after_s: int
    first: bool  # the first refusal of this client's window


@dataclass(slots=True)
class _Window:
    start: float
    failures: int = 0
    reported: bool = False


class SigninThrottle:
    def __init__(self, *, per_client: int, total: int, window_s: float, max_clients: int = 10_000) -> None:
        self.per_client, self.total, self.window_s = per_client, total, window_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Window] = OrderedDict()
        self._all = _Window(start=-math.inf)

    def _window(self, client: str, now: float) -> _Window:
        w = self._clients.get(client)
        if w is None or now - w.start >= self.window_s:
            self._clients.pop(client, None)
            while len(self._clients) >= self.max_clients:
                self._clients.popitem(last=False)  # the oldest window
            w = self._clients[client] = _Window(start=now)
        return w

    def refused(self, client: str, now: float) -> Refusal | None:
        w = self._clients.get(client)
        if w is None or now - w.start >= self.window_s or w.failures < self.per_client:
            return None
        first, w.reported = not w.reported, True
        return Refusal(max(1, math.ceil(w.start + self.window_s - now)), first)

    def failed(self, client: str, now: float) -> Audit:
        self._window(client, now).failures += 1
        if now - self._all.start >= self.window_s:
            self._all = _Window(start=now)
        self._all.failures += 1
        if self._all.failures <= self.total:
            return "row"
        if not self._all.reported:
            self._all.reported = True
            return "summary"
        return "none"

    def __len__(self) -> int:
        return len(self._clients)
