"""Messages that follow the pickup notice: each kind's id is stable, distinct, and not a milestone's."""

from __future__ import annotations

import pytest

from service.domain.follow_ups import CONTEXT, FollowUp, follow_up_id
from service.domain.milestones import Milestone
from service.domain.model import notification_id


def test_follow_ups_follow_the_pickup_notice_and_name_their_variables() -> None:
    assert {k.milestone for k in FollowUp} == {Milestone.READY_FOR_PICKUP}
    assert set(CONTEXT) == set(FollowUp)


def test_each_follow_up_has_a_stable_id_of_its_own() -> None:
    ids = [follow_up_id("SO-1", FollowUp.PICKUP_REMINDER, n) for n in (1, 2, 3)]
    ids.append(follow_up_id("SO-1", FollowUp.SURVEY))
    ids.append(follow_up_id("SO-2", FollowUp.SURVEY))
    assert len(set(ids)) == 5
    assert follow_up_id("SO-1", FollowUp.PICKUP_REMINDER, 2) == ids[1]
    assert notification_id("SO-1", Milestone.READY_FOR_PICKUP) not in ids


def test_a_follow_ups_number_starts_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        follow_up_id("SO-1", FollowUp.SURVEY, 0)
