"""TMS statuses and milestones: the collection status notifies no one, like every unmapped status."""

from __future__ import annotations

import pytest

from service.domain.milestones import PICKED_UP_STATUS, Milestone, is_collection, milestone_for
from service.domain.plan import Verdict, plan_batch
from tests.builders import update


@pytest.mark.parametrize("status", ["PICKED_UP", "picked_up", " Picked_Up "])
def test_the_collection_status_is_recognised_whatever_its_case_and_maps_to_no_milestone(status: str) -> None:
    assert is_collection(status)
    assert milestone_for(status) is None


@pytest.mark.parametrize("status", ["READY_FOR_PICKUP", "IN_TRANSIT", "PICKED", "PICKED_UP_LATE", ""])
def test_other_statuses_are_not_a_collection(status: str) -> None:
    assert not is_collection(status)


def test_picked_up_is_planned_like_any_status_that_notifies_no_one() -> None:
    batch = [
        update("A", "READY_FOR_PICKUP", event_id="A-1"),
        update("A", PICKED_UP_STATUS, event_id="A-2"),
        update("B", "IN_TRANSIT", event_id="B-1"),
    ]
    plans = plan_batch(batch, {("A", Milestone.READY_FOR_PICKUP): 1})
    assert [(p.milestone, p.verdict) for p in plans] == [
        (Milestone.READY_FOR_PICKUP, Verdict.CANDIDATE),
        (None, Verdict.NOT_A_MILESTONE),
        (None, Verdict.NOT_A_MILESTONE),
    ]
