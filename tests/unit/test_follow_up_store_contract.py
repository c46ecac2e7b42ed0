"""The follow-up store's contract (``tests.contracts.follow_ups``) on the fake the unit suite uses."""

from __future__ import annotations

import pytest

from service.testing import FakeFollowUps, FakePickups, FakeStore
from tests.contracts.follow_ups import FollowUpStoreContract, Stores


class TestFollowUpStoreContractOnTheFake(FollowUpStoreContract):
    @pytest.fixture
    def subject(self) -> Stores:
        store, pickups = FakeStore(), FakePickups()
        return Stores(FakeFollowUps(store, pickups.rows), store, pickups)
