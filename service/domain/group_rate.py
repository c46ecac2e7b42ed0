"""A provider's rate limit shared by every instance of the group, through one schedule they all book.

The group keeps one schedule per provider (in PostgreSQL: ``service.store.rate_schedule``): the
time its booked sends end, ``next_free``. An instance with sends waiting books the next ``amount``
segments: ``[max(next_free, now), +amount/rate)`` becomes its *slot*, and ``next_free`` moves to the
slot's end (GCRA, the generic cell rate algorithm, kept in one row). Slots never overlap, so the
group's sends are paced at ``rate`` as one sender would be, whichever instance holds the backlog;
an idle instance books nothing and wastes nothing.

Inside its slots an instance sends at the rate (and caps its own sends in any window, see
``_window_clear``): a send of ``cost`` segments goes out at the slot's
start plus what was used of it, and takes ``cost / rate`` seconds of it. Time a slot spent unused
(no send was waiting) is lost, never sent late: a late send would fall into another instance's
slot. So for any window of length ``T`` the group sends at most ``rate * T + c``, where ``c`` is
the largest single send (a long SMS goes out whole), plus the clock skew between the instances'
reading of the schedule (the round trip of one booking, well under a millisecond here).

This module is the pure part: an instance's slots, with the clock passed in (monotonic seconds).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Slot:
    start: float  # monotonic seconds
    amount: float  # segments
    ends_at: float  # the schedule's own time of its end (its clock, not ours)
    used: float = 0.0


#: Two slots are one when the second starts where the first ended, to the schedule's microsecond.
CONTIGUOUS_S = 2e-6


class GroupPacer:
    """The slots this instance booked of one provider's group schedule, spent in order at ``rate``.

    ``take`` answers when a send may go out, or None when more must be booked first (``booking``
    says how much); ``booked`` adds what the schedule gave.
    """

    __slots__ = ("_chunk_s", "_rate", "_recent", "_recent_total", "_slots", "_window_s")

    def __init__(self, rate_per_s: float, *, chunk_s: float = 0.1, window_s: float = 1.0) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError("rate_per_s must be a positive number")
        if not (chunk_s > 0 and math.isfinite(chunk_s)):
            raise ValueError("chunk_s must be a positive number")
        if not (window_s >= 1.0 and math.isfinite(window_s)):
            raise ValueError("window_s must be a positive number of at least 1 s")
        self._rate = rate_per_s
        self._chunk_s = chunk_s
        self._window_s = window_s
        self._slots: deque[Slot] = deque()
        self._recent: deque[tuple[float, float]] = deque()  # this instance's sends in the last window
        self._recent_total = 0.0

    @property
    def rate(self) -> float:
        return self._rate

    def booking(self, cost: float) -> float:
        """How many segments to book for a send of ``cost``: a chunk's worth, or the send if bigger."""
        return max(cost, self._rate * self._chunk_s)

    def booked(self, start: float, amount: float, *, at: float) -> None:
        """The schedule gave this instance ``amount`` segments from ``start`` (monotonic seconds),
        which is ``at`` by the schedule's clock. A slot that starts where this instance's last one
        ends (nobody booked between) extends it, so a send may span the two."""
        if not (amount > 0 and math.isfinite(amount) and math.isfinite(start) and math.isfinite(at)):
            raise ValueError("a slot needs a finite start and a positive amount")
        ends_at = at + amount / self._rate
        if self._slots and abs(self._slots[-1].ends_at - at) <= CONTIGUOUS_S:
            last = self._slots[-1]
            last.amount += amount
            last.ends_at = ends_at
            return
        self._slots.append(Slot(start, amount, ends_at))

    def take(self, cost: float, now: float) -> float | None:
        """Seconds to wait before sending ``cost`` segments (0.0: now), taking them from the slots;
        None: no slot booked has room for it (book ``booking(cost)`` more, then ask again)."""
        if not (cost > 0 and math.isfinite(cost)):
            raise ValueError("cost must be a positive number")
        while self._slots:
            slot = self._slots[0]
            # What of the slot lies in the past is lost: nothing may go out in it now.
            used = max(slot.used, (now - slot.start) * self._rate)
            if used + cost <= slot.amount + 1e-9:
                at = self._window_clear(max(now, slot.start + used / self._rate), cost)
                slot.used = (at - slot.start) * self._rate + cost
                self._recent.append((at, cost))
                self._recent_total += cost
                return at - now
            if len(self._slots) == 1:
                return None  # kept: a slot booked next may continue it, and the send span the two
            self._slots.popleft()  # too little left in it for this send: the rest is lost
        return None

    def _window_clear(self, at: float, cost: float) -> float:
        """The earliest time from ``at`` when this send keeps every window of ``window_s`` of this
        instance's sends within ``rate * window_s`` segments.

        Pacing at the rate alone lets a window hold ``rate * T`` plus one whole send (a 6-segment SMS
        at the window's end); this cap takes that out. With ``window_s = 1 / headroom`` and the rate
        at ``limit * headroom``, the cap is the provider's own limit over any window up to
        ``window_s - 1`` seconds longer than its second: jitter between our clock and its arrivals.
        """
        cap = self._rate * self._window_s
        while self._recent and self._recent[0][0] <= at - self._window_s:
            self._recent_total -= self._recent.popleft()[1]
        total = self._recent_total + cost
        for t, c in self._recent:
            if total <= cap + 1e-9:
                break
            total -= c
            at = max(at, t + self._window_s)  # once t has left the window
        return at

    def sent(self, now: float) -> None:
        """The last send taken actually went out at ``now`` (a busy event loop wakes late): the cap
        counts it from then, so the sends after it keep their distance from when it really left."""
        if self._recent:
            t, cost = self._recent[-1]
            if now > t:
                self._recent[-1] = (now, cost)

    def booked_until(self) -> float:
        """The end of the last slot booked (``-inf``: none)."""
        if not self._slots:
            return -math.inf
        last = self._slots[-1]
        return last.start + last.amount / self._rate
