"""The store's contract (``tests.contracts.store``) on the in-memory fake the unit suite uses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.domain.ports import NotificationStore
from service.testing import FakeStore
from tests.contracts.store import NotificationStoreContract


class TestNotificationStoreContractOnTheFake(NotificationStoreContract):
    @pytest.fixture
    def subject(self) -> NotificationStore:
        return FakeStore()

    async def advance(self, store: NotificationStore, seconds: float) -> None:
        assert isinstance(store, FakeStore)
        store.now += timedelta(seconds=seconds)
