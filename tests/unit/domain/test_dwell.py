"""Dwell time's pure parts: which events mark its ends, its length, the bounded place label."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.dwell import (
    OTHER_PLACE,
    End,
    PickupTime,
    dwell_seconds,
    normalise_place,
    pickup_times,
    place_label,
)
from service.domain.model import Pickup, ShipmentUpdate
from tests.builders import update

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def _ready(order: str, place: str) -> ShipmentUpdate:
    pickup = Pickup(place, "G/F, 88 Hoi Yuen Road", T0, T0 + timedelta(hours=4), ("HKID",))
    return dataclasses.replace(update(order, "READY_FOR_PICKUP"), pickup=pickup, occurred_at=T0)


def test_ready_and_collection_events_mark_the_ends_and_nothing_else_does() -> None:
    picked = dataclasses.replace(update("A", "picked_up"), occurred_at=T0 + timedelta(days=2))
    batch = [
        update("A", "ARRIVED_HK_WAREHOUSE"),
        _ready("A", "  Kwun Tong \n Service  Centre "),
        update("B", "IN_TRANSIT"),
        picked,
    ]
    assert pickup_times(batch) == [
        PickupTime("A", End.READY, T0, "Kwun Tong Service Centre"),
        PickupTime("A", End.PICKED_UP, T0 + timedelta(days=2)),
    ]


def test_a_pickup_dated_before_ready_dwells_zero() -> None:
    assert dwell_seconds(T0, T0 + timedelta(hours=30)) == 30 * 3600
    assert dwell_seconds(T0, T0 - timedelta(minutes=5)) == 0.0


@pytest.mark.parametrize(
    ("place", "label"),
    [
        ("Kwun Tong", "Kwun Tong"),
        (" Kwun  Tong ", "Kwun Tong"),
        ("Mong Kok", OTHER_PLACE),
        ("kwun tong", OTHER_PLACE),  # the TMS's spelling, exactly
        ("", OTHER_PLACE),
        (None, OTHER_PLACE),
    ],
)
def test_only_listed_places_get_a_label_of_their_own(place: str | None, label: str) -> None:
    assert place_label(place, frozenset({"Kwun Tong", "Sha Tin"})) == label


def test_places_are_spelt_one_way() -> None:
    assert normalise_place("\tSpecialized  旺角門市 ") == "Specialized 旺角門市"
