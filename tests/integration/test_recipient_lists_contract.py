"""The recipient lists' contract (``tests.contracts.recipient_lists``) on PostgreSQL (migration 0017)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.domain.ports import NotificationStore
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from tests.contracts.recipient_lists import RecipientListsContract

pytestmark = pytest.mark.integration


class TestRecipientListsContractOnPostgres(RecipientListsContract):
    @pytest.fixture
    async def subject(self, database_url: str) -> AsyncIterator[NotificationStore]:  # type: ignore[override]
        store = await PostgresStore.connect(database_url)
        yield store
        await store.close()


async def test_the_retention_purge_forgets_old_streaks_and_keeps_marks(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        await store.mark_number(b"marked" * 6, "twilio_21211")
        async with store.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO phone_health (subject, undelivered, updated_at) VALUES"
                " ($1, 2, now() - interval '91 days'), ($2, 1, now() - interval '1 day')",
                b"old-streak" * 4,
                b"new-streak" * 4,
            )
            await conn.execute(
                "UPDATE phone_health SET updated_at = now() - interval '400 days' WHERE marked_at IS NOT NULL"
            )
        await PrivacyStore(store.pool).purge(90, link_ttl_days=90)
        async with store.pool.acquire() as conn:
            kept = {bytes(r["subject"]) for r in await conn.fetch("SELECT subject FROM phone_health")}
    finally:
        await store.close()
    assert kept == {b"marked" * 6, b"new-streak" * 4}
