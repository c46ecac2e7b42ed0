"""The ``FollowUpStore`` port's contract: the follow-ups' scheduled sends (one per kind and pickup
notice, none without a notice), taken under a lease, each decided once with its receipt and moved
on or dropped in the same step, and what is planned. Run on ``FakeFollowUps``
(tests/unit/test_follow_up_store_contract.py) and on ``PostgresStore``
(tests/integration/test_follow_ups_on_real_stack.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.dwell import End, PickupTime
from service.domain.follow_up_plan import FollowUpRef
from service.domain.follow_ups import FollowUp, follow_up_id
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import Lease, Outcome
from service.domain.ports import FollowUpStore, NotificationStore, PickupStore
from service.report.receipts import receipt_row
from tests.builders import claim, update

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
KINDS = (FollowUp.PICKUP_REMINDER, FollowUp.SURVEY)
R, S = FollowUp.PICKUP_REMINDER, FollowUp.SURVEY


@dataclass
class Stores:
    follow_ups: FollowUpStore
    notifications: NotificationStore
    pickups: PickupStore


async def notice(stores: Stores, order: str, *, picked_up: datetime | None = None) -> None:
    """A pickup notice claimed for ``order``, ready at T0 (and collected at ``picked_up``)."""
    await stores.notifications.claim([claim(order, Milestone.READY_FOR_PICKUP)])
    times = [PickupTime(order, End.READY, T0, "Kwun Tong")]
    if picked_up is not None:
        times.append(PickupTime(order, End.PICKED_UP, picked_up))
    await stores.pickups.record_pickup_times(times)


def decided(order: str, kind: FollowUp, number: int, at: datetime) -> tuple[Outcome, FollowUpRef]:
    fid = follow_up_id(order, kind, number)
    ref = FollowUpRef(kind, number, fid, notification_id(order, Milestone.READY_FOR_PICKUP))
    return Outcome(
        fid, update(order, "READY_FOR_PICKUP"), Milestone.READY_FOR_PICKUP, State.SENT, "sms", at
    ), ref


class FollowUpStoreContract:
    """Subclasses give ``subject``: empty stores sharing one database (or one fake)."""

    @pytest.fixture
    def subject(self) -> Stores:
        raise NotImplementedError

    async def test_one_row_per_kind_and_notice_and_none_without_a_notice(self, subject: Stores) -> None:
        await notice(subject, "A")
        due = [(R, "A", T0 + 3 * DAY), (S, "A", T0 + DAY), (R, "NO-NOTICE", T0)]
        assert await subject.follow_ups.schedule_follow_ups(due) == 2
        assert await subject.follow_ups.schedule_follow_ups([(R, "A", T0)]) == 0  # the first is kept
        assert await subject.follow_ups.schedule_follow_ups([]) == 0
        nid = notification_id("A", Milestone.READY_FOR_PICKUP)
        assert await subject.follow_ups.planned_follow_ups([nid]) == {
            nid: [(S, 1, T0 + DAY), (R, 1, T0 + 3 * DAY)]
        }

    async def test_a_due_follow_up_is_leased_to_its_taker_and_carries_what_the_policy_needs(
        self, subject: Stores
    ) -> None:
        await notice(subject, "A", picked_up=T0 + 2 * DAY)
        await subject.follow_ups.schedule_follow_ups([(S, "A", T0 + 3 * DAY)])
        f = subject.follow_ups
        assert (
            await f.take_due_follow_ups(KINDS, now=T0 + 3 * DAY - timedelta(seconds=1), limit=5, lease_s=60)
            == []
        )
        [d] = await f.take_due_follow_ups(KINDS, now=T0 + 3 * DAY, limit=5, lease_s=60)
        assert (d.kind, d.order_id, d.releases, d.decided, d.retaken) == (S, "A", 1, 0, False)
        assert (d.ready_at, d.picked_up_at) == (T0, T0 + 2 * DAY)
        assert d.notification_id == notification_id("A", Milestone.READY_FOR_PICKUP)
        assert (
            await f.take_due_follow_ups(KINDS, now=T0 + 3 * DAY + timedelta(seconds=59), limit=5, lease_s=60)
            == []
        )
        assert await f.take_due_follow_ups([R], now=T0 + 4 * DAY, limit=5, lease_s=60) == []  # another kind
        [again] = await f.take_due_follow_ups(
            KINDS, now=T0 + 3 * DAY + timedelta(seconds=60), limit=5, lease_s=60
        )
        assert again.retaken

    async def test_each_follow_up_is_decided_once_with_its_receipt_and_its_row_moves_on(
        self, subject: Stores
    ) -> None:
        await notice(subject, "A")
        f = subject.follow_ups
        await f.schedule_follow_ups([(R, "A", T0 + 3 * DAY)])
        [d] = await f.take_due_follow_ups(KINDS, now=T0 + 3 * DAY, limit=5, lease_s=60)
        o, ref = decided("A", R, 1, T0 + 3 * DAY)
        lease = Lease("contract", 60.0)
        args = {"schedule_id": d.schedule_id, "next_due": T0 + 6 * DAY, "lease": lease}
        assert await f.record_follow_up(o, ref, receipt_row(o, ref), **args)
        assert not await f.record_follow_up(o, ref, receipt_row(o, ref), **args)  # once
        payloads = [json.loads(r.payload) for r in await subject.notifications.unpublished_receipts()]
        assert [(p["follow_up"], p["follow_up_number"]) for p in payloads] == [("pickup_reminder", 1)]
        assert (
            await f.take_due_follow_ups(KINDS, now=T0 + 6 * DAY - timedelta(seconds=1), limit=5, lease_s=60)
            == []
        )
        [d2] = await f.take_due_follow_ups(KINDS, now=T0 + 6 * DAY, limit=5, lease_s=60)
        assert (d2.schedule_id, d2.releases, d2.decided, d2.last_decided_at) == (
            d.schedule_id,
            1,
            1,
            T0 + 3 * DAY,
        )
        assert not d2.retaken  # a new reminder: not a re-take of the first
        o2, ref2 = decided("A", R, 2, T0 + 6 * DAY)
        assert await f.record_follow_up(
            o2, ref2, receipt_row(o2, ref2), schedule_id=d.schedule_id, next_due=None, lease=lease
        )
        assert await f.take_due_follow_ups(KINDS, now=T0 + 30 * DAY, limit=5, lease_s=60) == []  # dropped

    async def test_released_later_and_dropped(self, subject: Stores) -> None:
        await notice(subject, "A")
        f = subject.follow_ups
        await f.schedule_follow_ups([(R, "A", T0)])
        [d] = await f.take_due_follow_ups(KINDS, now=T0, limit=5, lease_s=60)
        await f.release_later([d.schedule_id], not_before=T0 + DAY, given_back=True)
        assert (
            await f.take_due_follow_ups(KINDS, now=T0 + DAY - timedelta(seconds=1), limit=5, lease_s=60) == []
        )
        [d] = await f.take_due_follow_ups(KINDS, now=T0 + DAY, limit=5, lease_s=60)
        assert d.releases == 1  # given back: not a re-take
        await f.drop_scheduled([d.schedule_id])
        assert await f.take_due_follow_ups(KINDS, now=T0 + 9 * DAY, limit=5, lease_s=60) == []

    async def test_no_reminder_is_planned_for_a_bike_collected_already(self, subject: Stores) -> None:
        await notice(subject, "A", picked_up=T0 + DAY)
        await subject.follow_ups.schedule_follow_ups([(R, "A", T0 + 3 * DAY), (S, "A", T0 + 2 * DAY)])
        nid = notification_id("A", Milestone.READY_FOR_PICKUP)
        assert await subject.follow_ups.planned_follow_ups([nid]) == {nid: [(S, 1, T0 + 2 * DAY)]}
        assert await subject.follow_ups.planned_follow_ups([]) == {}
