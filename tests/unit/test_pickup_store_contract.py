"""The pickup store's contract (``tests.contracts.pickups``) on the fake the unit suite uses."""

from __future__ import annotations

import pytest

from service.domain.ports import PickupStore
from service.testing import FakePickups
from tests.contracts.pickups import PickupStoreContract


class TestPickupStoreContractOnTheFake(PickupStoreContract):
    @pytest.fixture
    def subject(self) -> PickupStore:
        return FakePickups()
