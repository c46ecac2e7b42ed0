"""What to do with each event of a batch, decided from the events and what the store already knows.

The store is the final judge of duplicates across batches and instances (its unique key on
order and milestone); this plan settles what can be settled in memory first: which events
notify no one, which repeat an earlier event of the same batch, and which are stale because a
later milestone of the same order was already reached.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from service.domain.milestones import DEFAULT_STATUS_MAP, Milestone, milestone_for
from service.domain.model import ShipmentUpdate


class Verdict(enum.StrEnum):
    NOT_A_MILESTONE = "not_a_milestone"  # recorded, notifies no one
    DUPLICATE = "duplicate"  # the same (order, milestone) earlier in this batch
    STALE = "stale"  # a later milestone of this order was already reached
    CANDIDATE = "candidate"  # to be claimed in the store and, if the claim wins, sent


@dataclass(frozen=True, slots=True)
class Planned:
    update: ShipmentUpdate
    milestone: Milestone | None
    verdict: Verdict


def milestone_orders(
    updates: Iterable[ShipmentUpdate], status_map: Mapping[str, Milestone] = DEFAULT_STATUS_MAP
) -> set[str]:
    """The orders of a batch that reached a milestone: the ones whose store state the plan needs."""
    return {u.order_id for u in updates if milestone_for(u.tms_status, status_map) is not None}


def plan_batch(
    updates: Sequence[ShipmentUpdate],
    highest_rank: Mapping[str, int],
    status_map: Mapping[str, Milestone] = DEFAULT_STATUS_MAP,
) -> list[Planned]:
    """Decide each event in consumption order. ``highest_rank`` is the store's highest milestone rank per order."""
    reached = dict(highest_rank)
    seen: set[tuple[str, Milestone]] = set()
    out: list[Planned] = []
    for u in updates:
        m = milestone_for(u.tms_status, status_map)
        if m is None:
            out.append(Planned(u, None, Verdict.NOT_A_MILESTONE))
            continue
        key = (u.order_id, m)
        if key in seen:
            verdict = Verdict.DUPLICATE
        elif m.rank < reached.get(u.order_id, 0):
            verdict = Verdict.STALE
        else:
            verdict = Verdict.CANDIDATE
            reached[u.order_id] = m.rank
        seen.add(key)
        out.append(Planned(u, m, verdict))
    return out
