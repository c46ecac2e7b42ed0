"""The group's provider rate schedule on real PostgreSQL: instances booking at once never overlap,
and three instances pacing through it share one limit (``service.domain.group_rate``)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from service.domain.group_rate import GroupPacer
from service.domain.ports import Booking
from service.store.postgres import PostgresStore

pytestmark = pytest.mark.integration

RATE = 200.0


async def test_bookings_made_at_once_by_three_instances_never_overlap(database_url: str) -> None:
    stores = [await PostgresStore.connect(database_url, run_migrations=i == 0) for i in range(3)]
    try:
        slots = await asyncio.gather(*(s.book("twilio", 20.0, RATE, 60.0) for s in stores for _ in range(30)))
        assert all(isinstance(b, Booking) for b in slots)
        starts = sorted(b.start_at for b in slots if b is not None)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # 90 slots of 0.1 s each, back to back: no two share any of the schedule's time.
        assert min(gaps) == pytest.approx(0.1, abs=2e-6)
        assert starts[-1] - starts[0] == pytest.approx(8.9, abs=1e-4)
        # Other providers have schedules of their own.
        other = await stores[0].book("infobip", 20.0, RATE, 60.0)
        assert other is not None
        assert other.start_in_s < 0.05
    finally:
        for s in stores:
            await s.close()


async def test_a_schedule_booked_past_the_horizon_books_nothing_more(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        for _ in range(10):  # 10 x 0.1 s booked ahead
            assert await store.book("twilio", 20.0, RATE, 5.0) is not None
        assert await store.book("twilio", 20.0, RATE, 0.5) is None  # a send due within 0.5 s: not
        late = await store.book("twilio", 20.0, RATE, 5.0)  # one that may wait longer: at the end
        assert late is not None
        assert late.start_in_s == pytest.approx(1.0, abs=0.05)
    finally:
        await store.close()


async def test_three_pacers_sharing_the_schedule_send_at_the_group_rate_not_three_times_it(
    database_url: str,
) -> None:
    """What each instance's provider slot does (book, then wait for its turn), three at once, for
    600 segments: together they take the time one sender at the rate would, not a third of it."""
    stores = [await PostgresStore.connect(database_url, run_migrations=i == 0) for i in range(3)]
    sent: list[float] = []

    async def instance(store: PostgresStore, sends: int) -> None:
        pacer = GroupPacer(RATE)
        for _ in range(sends):
            while (wait := pacer.take(2.0, time.monotonic())) is None:
                booking = await store.book("twilio", pacer.booking(2.0), RATE, 60.0)
                assert booking is not None
                pacer.booked(time.monotonic() + booking.start_in_s, pacer.booking(2.0), at=booking.start_at)
            await asyncio.sleep(wait)
            sent.append(time.monotonic())

    try:
        started = time.monotonic()
        await asyncio.gather(*(instance(s, 100) for s in stores))
        took = time.monotonic() - started
    finally:
        for s in stores:
            await s.close()
    assert len(sent) == 300
    assert took >= 600 / RATE - 0.1  # 3 s at the group's rate: the three did not each take it all
