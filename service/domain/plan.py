"""What to do with each event of a batch, decided from the events and the order they were read in.

The store is the final judge of duplicates across batches and instances (its unique key on
order and milestone); this plan settles what can be settled in memory: which events notify no
one, which repeat an earlier event of the same batch, and which are stale.

**The stale rule.** Every event gets a *place* in the service's input when it is first read:
the store records it, with its Kafka coordinates, before anything of its batch is decided, in
the batch's order (and, within a partition, Kafka's order). An event read again (after a crash,
a rewind, a replay, or a copy under the same ``event_id``) keeps its first place. The place of
an (order, milestone) is the place of its first event. A milestone is **stale** when a later
milestone of the same order has an earlier place: the TMS told us of the later one first.
That is a function of the input and its order alone, never of what an earlier attempt of a
batch claimed, sent or recorded before a crash, so a crash at any point yields the same
decisions. Consequences:

- the usual case (one topic keyed by order id): stale iff an event of a later milestone of the
  order precedes the milestone's first event in the partition, in this batch or any before;
- a TMS re-send (new ``event_id``) of a milestone has the place of the milestone's first event:
  it never turns a decided milestone stale (and is a duplicate of it);
- events of one order on two partitions or topics (no order between them in Kafka): the order
  in which this service first read them, as recorded;
- an (order, milestone) the store knows only from its notification (its events no longer
  recorded, or recorded before places existed) counts as read before every event with a place;
- the bike's collection (TMS status ``PICKED_UP``, which is no milestone) comes after every
  milestone: a milestone first read after its order's collection is stale (a ``ready_for_pickup``
  that arrives after the pickup tells the customer nothing).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from service.domain.milestones import DEFAULT_STATUS_MAP, Milestone, milestone_for
from service.domain.model import ShipmentUpdate

#: The place of each (order, milestone) in the input: where its first event was read.
FirstReads = Mapping[tuple[str, Milestone], int]
#: The place of each order's first collection event (``PICKED_UP``): after every milestone.
Collections = Mapping[str, int]


class Verdict(enum.StrEnum):
    NOT_A_MILESTONE = "not_a_milestone"  # recorded, notifies no one
    DUPLICATE = "duplicate"  # the same (order, milestone) earlier in this batch
    STALE = "stale"  # a later milestone of this order was read before this one
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


def is_stale(
    order_id: str, milestone: Milestone, first_reads: FirstReads, collected: Collections | None = None
) -> bool:
    """Whether a later milestone of the order, or its collection, was read before this one (see the
    module's rule).

    A milestone without a place is taken as read now, after every milestone that has one.
    """
    here = first_reads.get((order_id, milestone))
    picked = (collected or {}).get(order_id)
    if picked is not None and (here is None or picked < here):
        return True
    for later in Milestone:
        there = first_reads.get((order_id, later))
        if later.rank > milestone.rank and there is not None and (here is None or there < here):
            return True
    return False


def plan_batch(
    updates: Sequence[ShipmentUpdate],
    first_reads: FirstReads,
    status_map: Mapping[str, Milestone] = DEFAULT_STATUS_MAP,
    collected: Collections | None = None,
) -> list[Planned]:
    """Decide each event in consumption order. ``first_reads``: the store's places of the batch's
    orders' milestones, read after the batch's events were recorded; ``collected``: of their
    collection events."""
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
        elif is_stale(u.order_id, m, first_reads, collected):
            verdict = Verdict.STALE
        else:
            verdict = Verdict.CANDIDATE
        seen.add(key)
        out.append(Planned(u, m, verdict))
    return out
