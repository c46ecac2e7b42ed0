"""The benchmark's pure helpers (tests/bench/): its statistics, its table and its workload's counts."""

from __future__ import annotations

import pytest

from service.contracts import parse_event
from service.domain.errors import EventRejected
from service.domain.phone import normalize_hk_mobile
from tests.bench import stats
from tests.bench.workload import STATUSES, event_id, generate


def test_percentile_interpolates_between_the_closest_ranks() -> None:
    assert stats.percentile([], 50) is None
    assert stats.percentile([5.0], 99) == 5.0
    assert stats.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert stats.percentile(list(map(float, range(101))), 99) == 99.0
    assert stats.percentile([1.0, 2.0], 100) == 2.0


def test_rate_counts_the_items_after_the_first_over_the_span() -> None:
    assert stats.rate([1.0]) is None
    assert stats.rate([2.0, 2.0]) is None
    assert stats.rate([0.0, 0.5, 1.0, 2.0]) == 1.5


def test_counter_rate_runs_from_the_first_sample_to_the_final_value() -> None:
    samples = [(10.0, 500.0), (10.5, 1500.0), (11.0, 2500.0), (11.5, 2500.0), (12.0, 2500.0)]
    assert stats.last_change(samples) == (11.0, 2500.0)
    assert stats.counter_rate(samples) == 2000.0
    assert stats.counter_rate(samples[:1]) is None
    assert stats.counter_rate([(1.0, 5.0), (2.0, 5.0)]) is None


def test_windows_are_one_second_from_each_item() -> None:
    times = [0.0, 0.5, 0.99, 1.0, 1.5]
    weights = [1.0, 2.0, 1.0, 3.0, 1.0]
    # [0, 1): 4; [0.5, 1.5): 6; [0.99, 1.99): 5; [1, 2): 4; [1.5, 2.5): 1
    assert stats.busiest_window(times, weights) == 6.0
    assert stats.windows_over(times, weights, limit=4.0) == 2
    assert stats.windows_over(times, weights, limit=6.0) == 0
    assert stats.busiest_window([], []) == 0.0


def test_ratio_is_none_without_both_numbers() -> None:
    assert stats.ratio(10.0, 4.0) == 2.5
    assert stats.ratio(None, 4.0) is None
    assert stats.ratio(10.0, 0.0) is None


def test_table_aligns_values_and_shows_missing_ones() -> None:
    text = stats.table([("alpha", 1234.5, "a note"), ("b", None, ""), ("ratio", 0.256, "x")])
    assert text.splitlines() == [
        "measure  value  note",
        "-------  -----  ----",
        "alpha    1,234  a note",
        "b            –",
        "ratio     0.26  x",
    ]


def test_the_workload_counts_what_its_records_hold() -> None:
    w = generate(300, seed=5)
    assert generate(300, seed=5).records == w.records
    valid, invalid = [], 0
    for _, value in w.records:
        try:
            valid.append(parse_event(value))
        except EventRejected:
            invalid += 1
    assert invalid == w.invalid > 0
    pairs = {(u.order_id, u.tms_status) for u in valid}
    assert len(pairs) == w.pairs
    assert len(valid) - len(pairs) == w.resends > 0
    # stale: a later milestone of the order came first
    first_rank: dict[str, int] = {}
    stale = 0
    seen = set()
    for u in valid:
        if (u.order_id, u.tms_status) in seen:
            continue
        seen.add((u.order_id, u.tms_status))
        rank = STATUSES.index(u.tms_status)
        stale += rank < first_rank.get(u.order_id, -1)
        first_rank[u.order_id] = max(first_rank.get(u.order_id, -1), rank)
    assert stale == w.stale > 0
    assert w.to_send == w.pairs - w.stale
    # SMS to mobiles; email (as the workload counts it) exactly for the fixed lines
    kinds = {u.order_id: normalize_hk_mobile(u.recipient.phone or "").reason for u in valid}
    assert set(kinds.values()) == {None, "fixed_line"}
    fixed_line_pairs = sum(kinds[order] == "fixed_line" for order, _ in pairs)
    assert fixed_line_pairs >= w.emails > 0  # the stale ones send nothing


@pytest.mark.parametrize(("value", "expected"), [(b'{"event_id": "e1"}', "e1"), (b"[1]", None), (b"{", None)])
def test_event_id_of_a_value(value: bytes, expected: str | None) -> None:
    assert event_id(value) == expected


def test_profile_top_ranks_self_time_by_function_and_by_package() -> None:
    site = "/w/.venv/lib/python3.11/site-packages"
    folded = "\n".join(
        [
            f'process 1:"python";run (/w/service/app.py:10);execute ({site}/asyncpg/connection.py:300) 6',
            'process 1:"python";run (/w/service/app.py:10);loads (/usr/lib/python3.11/json/__init__.py:346) 3',
            'process 1:"python";render (/w/service/compose/render.py:88) 1',
            "not a sample line",
        ]
    )
    top = stats.profile_top(folded, n=2)
    assert top["self_by_function_pct"] == [("connection.execute", 60.0), ("__init__.loads", 30.0)]
    assert top["self_by_package_pct"] == [("asyncpg", 60.0), ("stdlib json", 30.0)]
    assert stats.profile_top("") == {}
