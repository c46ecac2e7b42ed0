"""The store's contract (``tests.contracts.store``) on PostgreSQL: what the fake is proven against."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.domain.ports import NotificationStore
from service.store.postgres import PostgresStore
from tests.contracts.store import NotificationStoreContract

pytestmark = pytest.mark.integration


class TestNotificationStoreContractOnPostgres(NotificationStoreContract):
    @pytest.fixture
    async def subject(self, database_url: str) -> AsyncIterator[NotificationStore]:  # type: ignore[override]
        store = await PostgresStore.connect(database_url)
        yield store
        await store.close()

    async def advance(self, store: NotificationStore, seconds: float) -> None:
        """Time passes: every due time and lease the store keeps moves ``seconds`` into the past."""
        assert isinstance(store, PostgresStore)
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE notifications SET fallback_due_at = fallback_due_at - make_interval(secs => $1),"
                " status_check_due_at = status_check_due_at - make_interval(secs => $1),"
                " sms_sent_at = sms_sent_at - make_interval(secs => $1)",
                float(seconds),
            )
            await conn.execute(
                "UPDATE receipt_outbox SET lease_until = lease_until - make_interval(secs => $1)",
                float(seconds),
            )
