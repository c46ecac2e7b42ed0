"""The group's provider rate schedule on PostgreSQL (``rate_schedule``): book the next slot.

One statement per booking; the row's lock serialises the instances' bookings. Times come from the
database's clock alone (``clock_timestamp()``, read after the row lock is taken), so instances with
skewed clocks still book slots that do not overlap; the caller turns "starts in so many seconds"
into its own monotonic time.
"""

from __future__ import annotations

from service.domain.ports import Booking
from service.store.base import PostgresBase, translated

# Book ``$2`` segments at ``$3`` per second from max(next_free, now), unless the schedule is booked
# more than ``$4`` seconds ahead already. Returns the slot's start: in seconds from now, and as
# epoch seconds of the database's clock (to tell a slot that continues this instance's last one).
_BOOK = """
INSERT INTO rate_schedule AS s (provider, next_free)
VALUES ($1, clock_timestamp() + make_interval(secs => $2::float8 / $3::float8))
ON CONFLICT (provider) DO UPDATE
    SET next_free = greatest(s.next_free, clock_timestamp()) + make_interval(secs => $2::float8 / $3::float8)
    WHERE s.next_free <= clock_timestamp() + make_interval(secs => $4::float8)
RETURNING
    extract(epoch FROM s.next_free - clock_timestamp())::float8 - $2::float8 / $3::float8 AS start_in_s,
    extract(epoch FROM s.next_free)::float8 - $2::float8 / $3::float8 AS start_at
"""


class RateSchedules(PostgresBase):
    """``rate_schedule``: the slots every instance books of each provider's limit."""

    async def book(self, provider: str, amount: float, rate_per_s: float, horizon_s: float) -> Booking | None:
        async with translated():
            row = await self._pool.fetchrow(_BOOK, provider, amount, rate_per_s, horizon_s)
        return None if row is None else Booking(float(row["start_in_s"]), float(row["start_at"]))
