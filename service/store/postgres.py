"""The notification store on PostgreSQL (asyncpg). One statement per batch, never one per event.

Library errors are translated at this edge (``database.translated``): callers see
``StoreUnavailable`` and nothing from asyncpg. ``PostgresStore`` is composed of one part per
concern, each in its own module over the shared pool (``database.py``): events and claims
(``claims.py``), delivery reports and the jobs' leases (``deliveries.py``), the receipt outbox
(``receipt_outbox.py``), contacts and consent (``contacts.py``), the group's provider rate
schedule (``rate_schedule.py``), the dwell times of pickups (``dwell_times.py``), the sends
scheduled for later (``scheduled_sends.py``), the follow-ups of the pickup notice
(``follow_up_sends.py``), the pilot's allow-list and the bad numbers (``recipient_lists.py``).
"""

from __future__ import annotations

import asyncpg

from service.store.base import DATABASE_ERRORS, translated
from service.store.contacts import ContactsAndConsent
from service.store.deliveries import Deliveries
from service.store.dwell_times import DwellTimes
from service.store.events_and_claims import EventsAndClaims
from service.store.follow_up_sends import FollowUps
from service.store.migrate import migrate
from service.store.rate_schedule import RateSchedules
from service.store.receipt_outbox import ReceiptOutbox
from service.store.recipient_lists import RecipientLists
from service.store.scheduled_sends import ScheduledSends

__all__ = ["DATABASE_ERRORS", "PostgresStore", "translated"]


class PostgresStore(
    EventsAndClaims,
    Deliveries,
    ReceiptOutbox,
    ContactsAndConsent,
    RateSchedules,
    DwellTimes,
    ScheduledSends,
    RecipientLists,
    FollowUps,
):
    """The ``NotificationStore`` port (``service.domain.ports``) on one asyncpg pool."""

    @classmethod
    async def connect(cls, dsn: str, *, pool_size: int = 4, run_migrations: bool = True) -> PostgresStore:
        async with translated():
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, command_timeout=30)
            if run_migrations:
                async with pool.acquire() as conn:
                    await migrate(conn)
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> bool:
        try:
            async with self._pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except DATABASE_ERRORS:
            return False
        return True
