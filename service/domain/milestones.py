"""Customer milestones and how TMS statuses map onto them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


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
