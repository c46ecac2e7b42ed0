"""Coalescing: of an order's milestones due together, only the latest is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.domain.due_sends import DueSend, superseded
from service.domain.lifecycle import State
from service.domain.milestones import Milestone

A, C, R = Milestone.ARRIVED_HK_WAREHOUSE, Milestone.CUSTOMS_CLEARED, Milestone.READY_FOR_PICKUP
AT = datetime(2026, 11, 21, 1, tzinfo=UTC)


def due(order: str, milestone: Milestone, latest: int | None = None, releases: int = 1) -> DueSend:
    nid = uuid.uuid5(uuid.NAMESPACE_URL, f"{order}/{milestone}")
    return DueSend(
        nid, nid, order, "W", "e", AT, milestone, State.SCHEDULED, releases, AT, latest or milestone.rank
    )


def test_three_milestones_of_one_order_due_together_leave_only_the_latest() -> None:
    rows = [due("O1", A), due("O1", C), due("O1", R)]
    assert superseded(rows) == {rows[0].notification_id, rows[1].notification_id}


def test_orders_do_not_supersede_each_other() -> None:
    rows = [due("O1", A), due("O2", C), due("O3", R)]
    assert superseded(rows) == set()


def test_a_later_milestone_known_to_the_store_supersedes_one_taken_alone() -> None:
    # customs_cleared was sent already (it broke through, or is due in a later run): arrived goes quiet
    alone = due("O1", A, latest=C.rank)
    assert superseded([alone]) == {alone.notification_id}
    assert superseded([due("O1", R, latest=R.rank)]) == set()  # the latest is always sent


def test_retaken_means_an_earlier_take_never_finished() -> None:
    assert not due("O1", A).retaken
    assert due("O1", A, releases=2).retaken
