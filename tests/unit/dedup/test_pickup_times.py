"""The pickups stage: a batch's dwell ends recorded, each completed dwell observed once and returned."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from service.dedup.pickup_times import PickupTimes
from service.domain.model import InboundRecord, Pickup, ShipmentUpdate
from service.metrics import Metrics
from service.testing import FakePickups
from tests.builders import update

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def _rec(offset: int) -> InboundRecord:
    return InboundRecord("t", 0, offset, b"k", b"{}", 1)


def _ready(order: str, place: str) -> ShipmentUpdate:
    pickup = Pickup(place, "an address", T0, T0 + timedelta(hours=4), ())
    return dataclasses.replace(update(order, "READY_FOR_PICKUP"), pickup=pickup, occurred_at=T0)


def _picked(order: str, hours: float) -> ShipmentUpdate:
    return dataclasses.replace(update(order, "PICKED_UP"), occurred_at=T0 + timedelta(hours=hours))


async def test_each_completed_dwell_is_observed_once_under_a_bounded_label_and_returned() -> None:
    store, metrics = FakePickups(), Metrics()
    metrics.expect_pickup_places(["Kwun Tong"])
    stage = PickupTimes(store, metrics)
    batch = [_ready("A", "Kwun Tong"), _ready("B", "Tsuen Wan"), update("C", "IN_TRANSIT"), _picked("A", 5)]
    done = await stage.record([(_rec(i), u) for i, u in enumerate(batch)])
    assert [(d.order_id, d.place, d.seconds, d.picked_up_at) for d in done] == [
        ("A", "Kwun Tong", 5 * 3600, T0 + timedelta(hours=5))
    ]
    assert [
        d.order_id for d in await stage.record([(_rec(9), _picked("B", 2)), (_rec(10), _picked("A", 5))])
    ] == ["B"]
    get = metrics.registry.get_sample_value
    assert get("notifier_pickup_dwell_seconds_count", {"place": "Kwun Tong"}) == 1.0
    assert get("notifier_pickup_dwell_seconds_count", {"place": "other"}) == 1.0
    assert get("notifier_pickup_dwell_seconds_count", {"place": "Tsuen Wan"}) is None


async def test_a_batch_without_pickups_asks_the_store_nothing() -> None:
    store = FakePickups(fail_next=RuntimeError("must not be asked"))
    assert await PickupTimes(store, Metrics()).record([(_rec(0), update("A"))]) == []
