"""The recipient lists' contract (``tests.contracts.recipient_lists``) on PostgreSQL (migration 0017)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.domain.ports import NotificationStore
from service.store.postgres import PostgresStore
from tests.contracts.recipient_lists import RecipientListsContract

pytestmark = pytest.mark.integration


class TestRecipientListsContractOnPostgres(RecipientListsContract):
    @pytest.fixture
    async def subject(self, database_url: str) -> AsyncIterator[NotificationStore]:  # type: ignore[override]
        store = await PostgresStore.connect(database_url)
        yield store
        await store.close()
