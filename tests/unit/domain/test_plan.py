from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.domain.milestones import Milestone, milestone_for
from service.domain.model import Recipient, ShipmentUpdate, notification_id, receipt_id
from service.domain.plan import Verdict, milestone_orders, plan_batch


def update(order: str, status: str, event: str | None = None) -> ShipmentUpdate:
    return ShipmentUpdate(
        event_id=event or f"{order}-{status}",
        order_id=order,
        waybill="WB1",
        tms_status=status,
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        bike_model="Tarmac",
        recipient=Recipient(name="n", phone="91234567", email=None, locale="en"),
    )


@pytest.mark.parametrize(
    ("status", "milestone"),
    [
        ("ARRIVED_HK_WAREHOUSE", Milestone.ARRIVED_HK_WAREHOUSE),
        ("customs_cleared", Milestone.CUSTOMS_CLEARED),
        (" READY_FOR_PICKUP ", Milestone.READY_FOR_PICKUP),
        ("IN_TRANSIT", None),
        ("DELIVERED", None),
    ],
)
def test_tms_status_maps_to_milestone_or_nothing(status: str, milestone: Milestone | None) -> None:
    assert milestone_for(status) == milestone


def test_milestones_are_ranked_in_shipment_order() -> None:
    ranks = [
        m.rank
        for m in (Milestone.ARRIVED_HK_WAREHOUSE, Milestone.CUSTOMS_CLEARED, Milestone.READY_FOR_PICKUP)
    ]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 3


def test_same_order_and_milestone_twice_in_a_batch_is_a_duplicate() -> None:
    plans = plan_batch(
        [update("A", "ARRIVED_HK_WAREHOUSE", "e1"), update("A", "ARRIVED_HK_WAREHOUSE", "e2")], {}
    )
    assert [p.verdict for p in plans] == [Verdict.CANDIDATE, Verdict.DUPLICATE]


def test_earlier_milestone_after_a_later_one_in_the_batch_is_stale() -> None:
    plans = plan_batch([update("A", "READY_FOR_PICKUP"), update("A", "ARRIVED_HK_WAREHOUSE")], {})
    assert [p.verdict for p in plans] == [Verdict.CANDIDATE, Verdict.STALE]


def test_earlier_milestone_after_a_later_one_in_the_store_is_stale() -> None:
    plans = plan_batch(
        [update("A", "CUSTOMS_CLEARED"), update("B", "CUSTOMS_CLEARED")],
        {"A": Milestone.READY_FOR_PICKUP.rank},
    )
    assert [p.verdict for p in plans] == [Verdict.STALE, Verdict.CANDIDATE]


def test_milestones_in_order_are_all_candidates_and_other_statuses_notify_no_one() -> None:
    plans = plan_batch(
        [
            update("A", "IN_TRANSIT"),
            update("A", "ARRIVED_HK_WAREHOUSE"),
            update("A", "CUSTOMS_CLEARED"),
            update("A", "READY_FOR_PICKUP"),
        ],
        {},
    )
    assert [p.verdict for p in plans] == [
        Verdict.NOT_A_MILESTONE,
        Verdict.CANDIDATE,
        Verdict.CANDIDATE,
        Verdict.CANDIDATE,
    ]


def test_only_orders_with_milestones_need_store_state() -> None:
    assert milestone_orders([update("A", "IN_TRANSIT"), update("B", "CUSTOMS_CLEARED")]) == {"B"}


def test_ids_are_stable_and_distinct() -> None:
    a = notification_id("A", Milestone.CUSTOMS_CLEARED)
    assert a == notification_id("A", Milestone.CUSTOMS_CLEARED)
    assert a != notification_id("A", Milestone.READY_FOR_PICKUP)
    assert a != notification_id("B", Milestone.CUSTOMS_CLEARED)
    assert receipt_id(a, "sent", "sms", "twilio") == receipt_id(a, "sent", "sms", "twilio")
    assert receipt_id(a, "sent", "sms", "twilio") != receipt_id(a, "failed", "sms", "twilio")
    assert receipt_id(a, "sent", "sms", "twilio") != receipt_id(a, "sent", "email", "sendgrid")


def test_recipient_repr_hides_personal_data() -> None:
    r = Recipient(name="Chan Tai Man", phone="+85291234567", email="x@example.com", locale="en")
    assert "Chan" not in repr(r)
    assert "9123" not in repr(r)
    assert "example" not in repr(r)
