from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.milestones import Milestone, milestone_for
from service.domain.model import Recipient, ShipmentUpdate, notification_id, receipt_id
from service.domain.plan import Planned, Verdict, is_stale, milestone_orders, plan_batch


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


A, C, R = Milestone.ARRIVED_HK_WAREHOUSE, Milestone.CUSTOMS_CLEARED, Milestone.READY_FOR_PICKUP


def test_same_order_and_milestone_twice_in_a_batch_is_a_duplicate() -> None:
    plans = plan_batch(
        [update("A", "ARRIVED_HK_WAREHOUSE", "e1"), update("A", "ARRIVED_HK_WAREHOUSE", "e2")], {("A", A): 1}
    )
    assert [p.verdict for p in plans] == [Verdict.CANDIDATE, Verdict.DUPLICATE]


def test_earlier_milestone_after_a_later_one_in_the_batch_is_stale() -> None:
    plans = plan_batch(
        [update("A", "READY_FOR_PICKUP"), update("A", "ARRIVED_HK_WAREHOUSE")], {("A", R): 1, ("A", A): 2}
    )
    assert [p.verdict for p in plans] == [Verdict.CANDIDATE, Verdict.STALE]


def test_earlier_milestone_read_after_a_later_one_in_an_earlier_batch_is_stale() -> None:
    plans = plan_batch(
        [update("A", "CUSTOMS_CLEARED"), update("B", "CUSTOMS_CLEARED")],
        {("A", R): 1, ("A", C): 5, ("B", C): 6},
    )
    assert [p.verdict for p in plans] == [Verdict.STALE, Verdict.CANDIDATE]


def test_a_milestone_first_read_after_its_orders_collection_is_stale_one_read_before_is_not() -> None:
    batch = [
        update("A", "READY_FOR_PICKUP"),
        update("B", "READY_FOR_PICKUP"),
        update("C", "READY_FOR_PICKUP"),
    ]
    reads = {("A", R): 5, ("B", R): 6, ("C", R): 7}
    collected = {"A": 3, "B": 9}  # A was picked up before its ready event was read; B after; C not
    plans = plan_batch(batch, reads, collected=collected)
    assert [p.verdict for p in plans] == [Verdict.STALE, Verdict.CANDIDATE, Verdict.CANDIDATE]
    assert is_stale("A", A, {}, {"A": 0})  # a milestone without a place is read now: after it
    assert not is_stale("A", R, reads)  # without collections, the rule is the milestones' alone


def test_an_earlier_milestone_read_again_is_not_stale_because_a_later_one_was_claimed_meanwhile() -> None:
    # The crash: [ARRIVED, READY] in one batch, READY claimed (or even sent and recorded)
    # before ARRIVED's send was recorded, then kill -9 and a re-read. READY came after ARRIVED.
    plans = plan_batch([update("A", "ARRIVED_HK_WAREHOUSE")], {("A", A): 1, ("A", R): 2})
    assert [p.verdict for p in plans] == [Verdict.CANDIDATE]


# (places of the order's milestones, the milestone asked about, stale?)
STALE_RULE = [
    pytest.param({A: 1}, A, False, id="alone"),
    pytest.param({A: 1, C: 2, R: 3}, A, False, id="in order: first"),
    pytest.param({A: 1, C: 2, R: 3}, R, False, id="in order: last"),
    pytest.param({R: 1, A: 2}, A, True, id="later milestone read first"),
    pytest.param({C: 1, R: 2, A: 3}, A, True, id="two later milestones read first"),
    pytest.param({A: 1, R: 2, C: 3}, C, True, id="middle after the last"),
    pytest.param({A: 1, R: 2, C: 3}, A, False, id="first read first, whatever came after"),
    pytest.param({A: 3, R: 2}, R, False, id="a later milestone never is stale for an earlier one"),
    # A TMS re-send of ARRIVED read after READY keeps ARRIVED's first place: ARRIVED stays sent.
    pytest.param({A: 1, R: 2}, A, False, id="re-send keeps the first place"),
    # Known only from its notification (events no longer recorded, or before places existed): 0.
    pytest.param({R: 0, A: 7}, A, True, id="decided before places existed"),
    pytest.param({R: 0, A: 0}, A, False, id="both before places existed: no order between them"),
    # Not recorded (a caller that did not record its batch first): taken as read now.
    pytest.param({R: 4}, A, True, id="unrecorded, a later one known"),
    pytest.param({C: 4}, R, False, id="unrecorded, only earlier ones known"),
]


@pytest.mark.parametrize(("places", "milestone", "stale"), STALE_RULE)
def test_stale_iff_a_later_milestone_of_the_order_was_read_first(
    places: dict[Milestone, int], milestone: Milestone, stale: bool
) -> None:
    reads = {("A", m): p for m, p in places.items()} | {("B", R): 0}  # other orders never count
    assert is_stale("A", milestone, reads) is stale


def test_milestones_in_order_are_all_candidates_and_other_statuses_notify_no_one() -> None:
    plans = plan_batch(
        [
            update("A", "IN_TRANSIT"),
            update("A", "ARRIVED_HK_WAREHOUSE"),
            update("A", "CUSTOMS_CLEARED"),
            update("A", "READY_FOR_PICKUP"),
        ],
        {("A", A): 1, ("A", C): 2, ("A", R): 3},
    )
    assert [p.verdict for p in plans] == [
        Verdict.NOT_A_MILESTONE,
        Verdict.CANDIDATE,
        Verdict.CANDIDATE,
        Verdict.CANDIDATE,
    ]


STATUSES = ["ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP", "IN_TRANSIT"]
# (order, status, n): the same triple twice is one event read twice (a Kafka duplicate or a
# redelivery); another n is a TMS re-send under a new event id.
EVENTS = st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from(STATUSES), st.integers(1, 2)), max_size=14)
Pair = tuple[str, Milestone]


def expected(events: list[tuple[str, str, int]]) -> dict[Pair, Verdict]:
    """The rule from the sequence alone: stale iff a later milestone of the order came first."""
    first: dict[Pair, int] = {}
    for i, (order, status, _) in enumerate(events):
        if (m := milestone_for(status)) is not None:
            first.setdefault((order, m), i)
    return {
        (o, m): Verdict.STALE
        if any(first.get((o, later), i) < i for later in Milestone if later.rank > m.rank)
        else Verdict.CANDIDATE
        for (o, m), i in first.items()
    }


def batches(n: int, sizes: list[int], start: int = 0) -> list[tuple[int, int]]:
    out, i = [], start
    for size in itertools.cycle(sizes):
        if i >= n:
            return out
        out.append((i, min(n, i + size)))
        i += size
    return out


class Reader:
    """The store's side of the rule, in memory: places by first read, the first decision of a pair."""

    def __init__(self) -> None:
        self.places: dict[str, tuple[Pair | None, int]] = {}
        self.decided: dict[Pair, Verdict] = {}

    def read(self, events: list[tuple[str, str, int]]) -> list[Planned]:
        batch = [update(o, s, f"{o}-{s}-{n}") for o, s, n in events]
        for u in batch:
            m = milestone_for(u.tms_status)
            self.places.setdefault(u.event_id, ((u.order_id, m) if m else None, len(self.places) + 1))
        reads: dict[Pair, int] = {}
        for pair, place in self.places.values():
            if pair is not None:
                reads[pair] = min(reads.get(pair, place), place)
        return plan_batch(batch, reads)

    def finish(self, plans: list[Planned]) -> None:
        for p in plans:
            if p.milestone is not None and p.verdict in (Verdict.CANDIDATE, Verdict.STALE):
                self.decided.setdefault((p.update.order_id, p.milestone), p.verdict)


@given(
    events=EVENTS,
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    crash=st.integers(0, 6),
    resizes=st.lists(st.integers(1, 5), min_size=1, max_size=4),
)
def test_a_crashed_attempt_and_a_re_read_decide_what_one_clean_pass_decides(
    events: list[tuple[str, str, int]], sizes: list[int], crash: int, resizes: list[int]
) -> None:
    clean = Reader()
    for start, stop in batches(len(events), sizes):
        clean.finish(clean.read(events[start:stop]))
    assert clean.decided == expected(events)

    # Batch ``crash`` is read, recorded and planned, then the process dies before deciding
    # anything of it for good (its claims stay open); the restart reads from its first event on,
    # in batches of other sizes.
    crashed = Reader()
    first_pass = batches(len(events), sizes)
    for start, stop in first_pass[:crash]:
        crashed.finish(crashed.read(events[start:stop]))
    resume = first_pass[crash][0] if crash < len(first_pass) else len(events)
    interrupted = crashed.read(events[resume : first_pass[crash][1]]) if crash < len(first_pass) else []
    for start, stop in batches(len(events), resizes, start=resume):
        crashed.finish(crashed.read(events[start:stop]))
    assert crashed.decided == clean.decided
    # What the interrupted attempt was about to decide is what was decided after the restart.
    for p in interrupted:
        if p.milestone is not None and p.verdict is not Verdict.DUPLICATE:
            assert crashed.decided[(p.update.order_id, p.milestone)] is p.verdict


def test_only_orders_with_milestones_need_store_state() -> None:
    assert milestone_orders([update("A", "IN_TRANSIT"), update("B", "CUSTOMS_CLEARED")]) == {"B"}


def test_a_configured_status_map_decides_which_statuses_are_milestones() -> None:
    custom = {"COLLECTABLE": Milestone.READY_FOR_PICKUP}
    batch = [update("A", "COLLECTABLE"), update("B", "READY_FOR_PICKUP")]
    assert milestone_orders(batch, custom) == {"A"}
    assert [(p.milestone, p.verdict) for p in plan_batch(batch, {}, custom)] == [
        (Milestone.READY_FOR_PICKUP, Verdict.CANDIDATE),
        (None, Verdict.NOT_A_MILESTONE),
    ]


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


@given(
    events=st.lists(
        st.tuples(
            st.sampled_from("ABC"), st.sampled_from([*STATUSES, "customs_cleared "]), st.integers(1, 3)
        ),
        max_size=30,
    ),
    places=st.dictionaries(
        st.tuples(st.sampled_from("ABCD"), st.sampled_from(list(Milestone))), st.integers(0, 50), max_size=12
    ),
)
def test_a_plan_never_yields_two_candidates_for_one_pair_whatever_the_store_says(
    events: list[tuple[str, str, int]], places: dict[Pair, int]
) -> None:
    batch = [update(o, s, f"{o}-{s}-{n}") for o, s, n in events]
    plans = plan_batch(batch, places)
    assert [p.update for p in plans] == batch  # one decision per event, in consumption order
    candidates = [(p.update.order_id, p.milestone) for p in plans if p.verdict is Verdict.CANDIDATE]
    assert len(candidates) == len(set(candidates))
    # the first event of each pair is decided (candidate or stale), every later one is its duplicate
    firsts: dict[Pair, Verdict] = {}
    for p in plans:
        if p.milestone is None:
            assert p.verdict is Verdict.NOT_A_MILESTONE
            continue
        pair = (p.update.order_id, p.milestone)
        if pair in firsts:
            assert p.verdict is Verdict.DUPLICATE
        else:
            assert p.verdict in (Verdict.CANDIDATE, Verdict.STALE)
            assert (p.verdict is Verdict.STALE) == is_stale(*pair, places)
            firsts[pair] = p.verdict
