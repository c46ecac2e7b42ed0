"""The ``PickupStore`` port's contract: each order's dwell ends, the dwells they complete (each
once), and which bikes were collected. Run on ``FakePickups`` (tests/unit/test_pickup_store_contract.py)
and on ``PostgresStore`` (tests/integration/test_dwell_on_real_stack.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.dwell import Dwell, End, PickupTime
from service.domain.ports import PickupStore

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def ready(order: str, at: datetime, place: str | None = "Kwun Tong") -> PickupTime:
    return PickupTime(order, End.READY, at, place)


def picked(order: str, at: datetime) -> PickupTime:
    return PickupTime(order, End.PICKED_UP, at)


class PickupStoreContract:
    """Subclasses give ``subject``: an empty store."""

    @pytest.fixture
    def subject(self) -> PickupStore:
        raise NotImplementedError

    async def test_a_dwell_is_complete_when_both_ends_are_known_in_either_order(
        self, subject: PickupStore
    ) -> None:
        assert await subject.record_pickup_times([ready("A", T0), picked("B", T0 + 5 * H)]) == []
        done = await subject.record_pickup_times([picked("A", T0 + 30 * H), ready("B", T0, "Mong Kok")])
        assert sorted(done, key=lambda d: d.place) == [
            Dwell("A", "Kwun Tong", 30 * 3600, T0 + 30 * H),
            Dwell("B", "Mong Kok", 5 * 3600, T0 + 5 * H),
        ]

    async def test_both_ends_in_one_batch_complete_it_at_once(self, subject: PickupStore) -> None:
        assert await subject.record_pickup_times([ready("A", T0), picked("A", T0 + 2 * H)]) == [
            Dwell("A", "Kwun Tong", 7200, T0 + 2 * H)
        ]

    async def test_a_dwell_is_returned_once_however_often_its_events_are_recorded(
        self, subject: PickupStore
    ) -> None:
        batch = [ready("A", T0), picked("A", T0 + 2 * H)]
        assert len(await subject.record_pickup_times(batch)) == 1
        assert await subject.record_pickup_times(batch) == []
        assert await subject.record_pickup_times([picked("A", T0 + 9 * H)]) == []

    async def test_each_end_keeps_its_earliest_time_and_the_first_ready_place(
        self, subject: PickupStore
    ) -> None:
        await subject.record_pickup_times(
            [ready("A", T0 + 3 * H, "Sha Tin"), ready("A", T0 + 1 * H, "Tsuen Wan")]
        )
        await subject.record_pickup_times([ready("A", T0, "Mong Kok")])  # a re-send dated earlier
        done = await subject.record_pickup_times([picked("A", T0 + 10 * H), picked("A", T0 + 4 * H)])
        assert done == [Dwell("A", "Sha Tin", 4 * 3600, T0 + 4 * H)]

    async def test_a_pickup_dated_before_its_ready_time_dwells_zero(self, subject: PickupStore) -> None:
        assert await subject.record_pickup_times([picked("A", T0), ready("A", T0 + H)]) == [
            Dwell("A", "Kwun Tong", 0, T0)
        ]

    async def test_picked_up_names_only_the_collected_bikes(self, subject: PickupStore) -> None:
        await subject.record_pickup_times(
            [ready("A", T0), ready("B", T0), picked("B", T0 + H), picked("C", T0)]
        )
        assert await subject.picked_up(["A", "B", "C", "D"]) == {"B", "C"}
        assert await subject.picked_up([]) == set()
