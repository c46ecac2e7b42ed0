"""The recipient lists' contract (``tests.contracts.recipient_lists``) on the in-memory fake."""

from __future__ import annotations

import pytest

from service.domain.ports import NotificationStore
from service.testing import FakeStore
from tests.contracts.recipient_lists import RecipientListsContract


class TestRecipientListsContractOnTheFake(RecipientListsContract):
    @pytest.fixture
    def subject(self) -> NotificationStore:
        return FakeStore()
