"""The group's rate schedule, as one instance spends the slots it booked."""

from __future__ import annotations

import math

import pytest

from service.domain.group_rate import GroupPacer


def test_sends_inside_a_slot_go_out_at_the_rate() -> None:
    p = GroupPacer(100.0)  # 10 ms a segment
    assert p.take(1, now=0.0) is None  # nothing booked yet
    assert p.booking(1) == pytest.approx(10.0)  # a chunk: 0.1 s of the rate
    p.booked(0.5, 10.0, at=1000.5)
    waits = [p.take(2, now=0.0) for _ in range(5)]
    assert waits == pytest.approx([0.5, 0.52, 0.54, 0.56, 0.58])
    assert p.take(1, now=0.0) is None  # used up
    assert p.booked_until() == pytest.approx(0.6)


def test_time_a_slot_spent_unused_is_lost_never_sent_late() -> None:
    p = GroupPacer(100.0)
    p.booked(0.0, 10.0, at=50.0)
    assert p.take(1, now=0.05) == 0.0  # half the slot went by unused: 5 segments left, not 10
    assert [p.take(1, now=0.05) for _ in range(4)] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert p.take(1, now=0.05) is None
    p.booked(1.0, 10.0, at=51.0)
    assert p.take(1, now=2.0) is None  # a slot wholly in the past is dropped


def test_a_send_that_does_not_fit_the_rest_of_a_slot_waits_for_the_next() -> None:
    p = GroupPacer(100.0)
    p.booked(0.0, 10.0, at=50.0)
    assert p.take(4, now=0.0) == 0.0
    assert p.take(4, now=0.0) == pytest.approx(0.04)
    assert p.take(4, now=0.0) is None  # 2 left: a 4-segment SMS goes out whole, never split
    p.booked(0.3, 10.0, at=50.3)  # someone else booked between: not contiguous
    assert p.take(4, now=0.0) == pytest.approx(0.3)


def test_a_slot_that_continues_the_last_one_extends_it_so_a_send_may_span_both() -> None:
    p = GroupPacer(100.0)
    p.booked(0.0, 10.0, at=50.0)
    assert p.take(4, now=0.0) == 0.0
    assert p.take(4, now=0.0) == pytest.approx(0.04)
    p.booked(0.1000004, 10.0, at=50.1)  # the schedule's clock says it starts where ours ended
    assert p.take(4, now=0.0) == pytest.approx(0.08)  # spans the two: nothing lost
    assert p.booked_until() == pytest.approx(0.2)


def test_a_send_bigger_than_a_chunk_books_itself() -> None:
    p = GroupPacer(10.0)
    assert p.booking(3) == 3  # 0.1 s at 10/s is 1 segment: the send is bigger
    p.booked(0.0, 3, at=0.0)
    assert p.take(3, now=0.0) == 0.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_bad_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        GroupPacer(bad)
    p = GroupPacer(10.0)
    with pytest.raises(ValueError, match="positive"):
        p.take(bad, now=0.0)
    with pytest.raises(ValueError, match="slot"):
        p.booked(0.0, bad, at=0.0)


def test_a_window_longer_than_a_second_caps_what_a_clock_skewed_second_could_hold() -> None:
    p = GroupPacer(100.0, window_s=1.25)  # at most 125 segments in any 1.25 s of our sends
    p.booked(0.0, 1000.0, at=0.0)
    times = []
    for _ in range(200):
        wait = p.take(5, now=0.0)
        assert wait is not None
        times.append(wait)
    for t in times:
        assert 5 * sum(1 for u in times if t <= u < t + 1.25) <= 125


@pytest.mark.parametrize("bad", [0.5, math.inf, math.nan])
def test_a_window_shorter_than_a_second_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="window_s"):
        GroupPacer(10.0, window_s=bad)


def test_over_any_window_a_pacer_fed_back_to_back_never_exceeds_the_rate() -> None:
    rate, now, sent = 50.0, 0.0, []
    p = GroupPacer(rate)
    next_free = 0.0
    for cost in [1, 3, 2, 1, 1, 3, 3, 1, 2, 2] * 30:
        wait = p.take(cost, now)
        if wait is None:
            amount = p.booking(cost)
            start = max(next_free, now)
            next_free = start + amount / rate
            p.booked(start, amount, at=start)
            wait = p.take(cost, now)
        assert wait is not None
        now += wait
        sent.append((now, cost))
    for t, _ in sent:
        in_window = sum(c for at, c in sent if t <= at < t + 1.0)
        assert in_window <= rate  # the cap: pacing alone would allow the rate plus one whole send
    assert sum(c for _, c in sent) / now > 0.96 * rate  # and little is lost


def test_a_send_that_went_out_late_is_counted_from_when_it_left() -> None:
    p = GroupPacer(10.0, window_s=1.0)  # at most 10 segments in any second of our sends
    p.booked(0.0, 100.0, at=0.0)
    assert [p.take(5, now=0.0) for _ in range(2)] == pytest.approx([0.0, 0.5])
    p.sent(0.9)  # the second woke 0.4 s late
    assert p.take(5, now=0.9) == pytest.approx(0.1)  # at 1.0, a second after the first
    p.sent(1.0)
    assert p.take(5, now=1.0) == pytest.approx(0.9)  # at 1.9, a second after the late one (not 1.5)
