"""Coalescing: of an order's milestones due together, only the latest is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.domain.due_sends import DueSend, Pending, backlog_superseded, superseded
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


def pending(order: str, milestone: Milestone, waited_s: float, *, first: bool = True) -> Pending:
    return Pending(uuid.uuid5(uuid.NAMESPACE_URL, f"{order}/{milestone}"), order, milestone, waited_s, first)


def test_a_backlog_of_one_orders_milestones_leaves_only_the_latest() -> None:
    rows = [pending("O1", A, 900), pending("O1", C, 900), pending("O1", R, 900), pending("O2", A, 900)]
    assert backlog_superseded(rows, after_s=600) == {rows[0].notification_id, rows[1].notification_id}


def test_live_traffic_and_re_claims_are_not_coalesced() -> None:
    fresh = [pending("O1", A, 5), pending("O1", C, 5)]
    assert backlog_superseded(fresh, after_s=600) == set()
    # an old arrival with a fresh later milestone in the same batch: the old one is superseded
    mixed = [pending("O1", A, 900), pending("O1", C, 5)]
    assert backlog_superseded(mixed, after_s=600) == {mixed[0].notification_id}
    # a re-claim may have been sent by its earlier claim: never superseded
    again = [pending("O1", A, 900, first=False), pending("O1", C, 900)]
    assert backlog_superseded(again, after_s=600) == set()
