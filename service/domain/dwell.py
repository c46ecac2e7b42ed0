"""Dwell time: how long a bike waits between ``ready_for_pickup`` and its collection (``PICKED_UP``).

Both ends are the TMS's times (``occurred_at``) of the order's first event of each kind: a re-send
keeps the first. The place is the ``ready_for_pickup`` event's pickup place (a shop or warehouse
the TMS names, not the customer's). What is kept is the order id, the place and the two times:
no name, phone, email or address. The two events may come in either order; a dwell is complete,
and observed once, when both ends are known. A pickup the TMS dates before its ready time (clocks
apart) dwells 0 s. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from service.domain.milestones import Milestone, is_collection, milestone_for
from service.domain.model import ShipmentUpdate

#: The label of every place that is not listed (``NOTIFIER_DWELL_PLACES``): the label set is bounded.
OTHER_PLACE: Final = "other"
#: Most places that get a label of their own.
MAX_PLACES: Final = 50
_H, _D = 3600.0, 86400.0
#: notifier_pickup_dwell_seconds: an hour to a month (a bike uncollected for longer is +Inf).
DWELL_BUCKETS: Final = (
    _H,
    3 * _H,
    6 * _H,
    12 * _H,
    _D,
    2 * _D,
    3 * _D,
    4 * _D,
    5 * _D,
    7 * _D,
    10 * _D,
    14 * _D,
    21 * _D,
    30 * _D,
)


class End(StrEnum):
    """Which end of a dwell an event is."""

    READY = "ready"
    PICKED_UP = "picked_up"


@dataclass(frozen=True, slots=True)
class PickupTime:
    """One end of an order's dwell, from one event."""

    order_id: str
    end: End
    at: datetime
    place: str | None = None  # the pickup place, on the ready end


@dataclass(frozen=True, slots=True)
class Dwell:
    """A dwell completed now: where the bike waited, for how long, and when it was collected (the
    satisfaction survey is due some time after that)."""

    order_id: str
    place: str
    seconds: float
    picked_up_at: datetime


def normalise_place(place: str) -> str:
    """One spelling per place: whitespace runs collapsed (the TMS sends free text)."""
    return " ".join(place.split())


def pickup_times(updates: Iterable[ShipmentUpdate]) -> list[PickupTime]:
    """The dwell ends a batch's events mark, in input order (other events mark none)."""
    out = []
    for u in updates:
        if milestone_for(u.tms_status) is Milestone.READY_FOR_PICKUP:
            place = normalise_place(u.pickup.place) if u.pickup else None
            out.append(PickupTime(u.order_id, End.READY, u.occurred_at, place))
        elif is_collection(u.tms_status):
            out.append(PickupTime(u.order_id, End.PICKED_UP, u.occurred_at))
    return out


def dwell_seconds(ready_at: datetime, picked_up_at: datetime) -> float:
    """Seconds from ready to picked up; 0 when the TMS dates the pickup first."""
    return max(0.0, (picked_up_at - ready_at).total_seconds())


def place_label(place: str | None, listed: frozenset[str]) -> str:
    """The metric's ``place`` label: a listed place, else ``other`` (a bounded label set)."""
    name = normalise_place(place) if place else ""
    return name if name in listed else OTHER_PLACE
