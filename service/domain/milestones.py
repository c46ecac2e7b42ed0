"""Customer milestones and how TMS statuses map onto them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final


class Milestone(enum.StrEnum):
    """A moment in a shipment's life that a customer is told about, in the order they happen."""

    ARRIVED_HK_WAREHOUSE = "arrived_hk_warehouse"
    CUSTOMS_CLEARED = "customs_cleared"
    READY_FOR_PICKUP = "ready_for_pickup"

    @property
    def rank(self) -> int:
        """Position in the shipment's life: a lower rank arriving after a higher one is stale."""
        return _RANK[self]


_RANK = {m: i for i, m in enumerate(Milestone, start=1)}

#: The TMS statuses that notify a customer. Every other status is recorded and notifies no one.
DEFAULT_STATUS_MAP: Mapping[str, Milestone] = MappingProxyType(
    {
        "ARRIVED_HK_WAREHOUSE": Milestone.ARRIVED_HK_WAREHOUSE,
        "CUSTOMS_CLEARED": Milestone.CUSTOMS_CLEARED,
        "READY_FOR_PICKUP": Milestone.READY_FOR_PICKUP,
    }
)


def milestone_for(status: str, status_map: Mapping[str, Milestone] = DEFAULT_STATUS_MAP) -> Milestone | None:
    """The milestone a TMS status stands for, or None when it notifies no one."""
    return status_map.get(status.strip().upper())


# Collection: the TMS status that the customer took the bike. It maps to no milestone, so, like every
# status outside the map, it is recorded (``shipment_events``), counted ``not_a_milestone`` and
# notifies no one (no notification, no receipt); it ends the pickup's dwell time
# (``service.domain.dwell``) and its reminders (``service.domain.reminders``).
PICKED_UP_STATUS: Final = "PICKED_UP"


def is_collection(status: str) -> bool:
    """Whether a TMS status says the customer collected the bike."""
    return status.strip().upper() == PICKED_UP_STATUS
