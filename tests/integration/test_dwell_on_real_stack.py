"""Pickups on the real stack: the collection status (PICKED_UP) consumed from Kafka notifies no one,
the dwell it ends is recorded in PostgreSQL and observed once, and ``notifier report dwell`` (a
process, as an operator runs it) summarises the dwell times by place and by weekday and hour in
Hong Kong time, without personal data, for a bounded range."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest

from service.app import Service
from service.domain.dwell import End, PickupTime
from service.domain.ports import PickupStore
from service.sandbox.serve import SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from tests.builders import PICKUP
from tests.contracts.pickups import PickupStoreContract
from tests.integration.helpers import event, group_caught_up, produce, read_decisions, running, wait_until
from tests.integration.test_privacy_cli import notifier

pytestmark = pytest.mark.integration

KWUN_TONG = "Specialized Kwun Tong Service Centre"  # the builders' English pickup place
MONG_KOK = "Specialized 旺角門市"  # ... and the Chinese one


class TestPickupStoreContractOnPostgres(PickupStoreContract):
    @pytest.fixture
    async def subject(self, database_url: str) -> AsyncIterator[PickupStore]:  # type: ignore[override]
        store = await PostgresStore.connect(database_url)
        yield store
        await store.close()


def _dwell(service: Service, place: str) -> tuple[float, float]:
    """(count, sum) of notifier_pickup_dwell_seconds for a place label."""
    get = service.metrics.registry.get_sample_value
    labels = {"place": place}
    return get("notifier_pickup_dwell_seconds_count", labels) or 0.0, get(
        "notifier_pickup_dwell_seconds_sum", labels
    ) or 0.0


async def test_a_pickup_notifies_no_one_and_its_dwell_is_recorded_and_observed_once(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = settings.model_copy(update={"dwell_places": [KWUN_TONG]})
    topic = s.input_topics[0]
    messages = [
        event("IT-D1", "READY_FOR_PICKUP", occurred_at="2026-11-22T10:00:00+08:00"),
        event(
            "IT-D2",
            "READY_FOR_PICKUP",
            locale="zh-HK",
            pickup=PICKUP["zh-HK"],
            occurred_at="2026-11-22T11:00:00+08:00",
        ),
        event("IT-D1", "PICKED_UP", occurred_at="2026-11-24T16:30:00+08:00"),  # 2 d 6 h 30 min
        event("IT-D1", "PICKED_UP", n=2, occurred_at="2026-11-24T17:00:00+08:00"),  # a TMS re-send
        event("IT-D2", "PICKED_UP", occurred_at="2026-11-22T15:00:00+08:00"),  # 4 h
        event("IT-D3", "PICKED_UP", occurred_at="2026-11-23T09:00:00+08:00"),  # never ready: no dwell
    ]
    service = Service(s)
    async with running(service):
        await produce(s.kafka_bootstrap_servers, topic, messages)
        await wait_until(
            lambda: group_caught_up(s.kafka_bootstrap_servers, s.consumer_group, topic),
            what="every event to be committed",
        )
        decided = await read_decisions(s.kafka_bootstrap_servers, s.receipts_topic, 2)

    # The pickups sent nothing and have no receipt: only the two ready notices did.
    assert sorted((d["order_id"], d["milestone"], d["outcome"]) for d in decided) == [
        ("IT-D1", "ready_for_pickup", "sent"),
        ("IT-D2", "ready_for_pickup", "sent"),
    ]
    assert len(state.messages) == 2
    # Observed once each, the listed place under its name, the other as "other".
    assert _dwell(service, KWUN_TONG) == (1.0, (2 * 24 + 6.5) * 3600)
    assert _dwell(service, "other") == (1.0, 4 * 3600)

    conn = await asyncpg.connect(s.database_url)
    try:
        rows = await conn.fetch("SELECT * FROM pickup_dwell ORDER BY order_id")
        recorded = await conn.fetch(
            "SELECT order_id, tms_status, milestone FROM shipment_events WHERE tms_status = 'PICKED_UP'"
        )
    finally:
        await conn.close()
    assert [(r["order_id"], r["place"]) for r in rows] == [
        ("IT-D1", KWUN_TONG),
        ("IT-D2", MONG_KOK),
        ("IT-D3", None),
    ]
    assert rows[0]["picked_up_at"] == datetime.fromisoformat("2026-11-24T16:30:00+08:00")  # the first pickup
    assert rows[2]["ready_at"] is None
    assert set(rows[0].keys()) == {"order_id", "place", "ready_at", "picked_up_at", "updated_at"}
    text = json.dumps([dict(r) for r in rows], default=str, ensure_ascii=False)
    assert all(pii not in text for pii in ("Test Customer", "9123", "customer@example.com", "Hoi Yuen"))
    # Recorded like every status that notifies no one: in the event history, with no milestone.
    assert sorted((r["order_id"], r["milestone"]) for r in recorded) == [
        ("IT-D1", None),
        ("IT-D1", None),
        ("IT-D2", None),
        ("IT-D3", None),
    ]

    # A replay of the whole topic (a new group, a new instance) observes no dwell again.
    replay = s.model_copy(update={"consumer_group": s.consumer_group + "-replay"})
    again = Service(replay)
    async with running(again):
        await wait_until(
            lambda: group_caught_up(replay.kafka_bootstrap_servers, replay.consumer_group, topic),
            what="the replay to commit every event",
        )
    assert _dwell(again, KWUN_TONG) == (0.0, 0.0)
    assert _dwell(again, "other") == (0.0, 0.0)
    assert len(state.messages) == 2


def _hkt(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


async def _seed(database_url: str) -> None:
    """Completed dwells: 10 at Kwun Tong (1 to 10 h, Tuesday 15:xx HKT), 6 at Mong Kok (a day each,
    Saturday 10:xx), 2 at Sha Tin (under the report's minimum group), and pickups either side of
    the range's Hong Kong day boundaries."""
    times: list[PickupTime] = []

    def dwell(order: str, place: str, picked_up: datetime, hours: float) -> None:
        times.append(PickupTime(order, End.READY, picked_up - timedelta(hours=hours), place))
        times.append(PickupTime(order, End.PICKED_UP, picked_up))

    for i in range(10):
        dwell(f"KT-{i}", "Kwun Tong", _hkt(f"2026-11-24T15:{i:02d}:00"), i + 1)
    for i in range(6):
        dwell(f"MK-{i}", "Mong Kok", _hkt(f"2026-11-28T10:{i:02d}:00"), 24)
    dwell("ST-1", "Sha Tin", _hkt("2026-11-29T09:00:00"), 2)
    dwell("ST-2", "Sha Tin", _hkt("2026-11-30T23:59:00"), 2)  # the last day's last minute: in
    dwell("OUT-1", "Kwun Tong", _hkt("2026-12-01T00:00:00"), 500)  # the day after (UTC: still 30 Nov)
    dwell("OUT-2", "Kwun Tong", _hkt("2026-10-31T23:59:00"), 500)  # the day before
    store = await PostgresStore.connect(database_url)
    try:
        assert len(await store.record_pickup_times(times)) == 20
        await store.record_pickup_times(
            [PickupTime("WAIT-1", End.READY, _hkt("2026-11-20T10:00:00"), "Mong Kok")]
        )
    finally:
        await store.close()


async def test_report_dwell_gives_percentiles_by_place_and_weekday_hour_in_hong_kong_time(
    database_url: str,
) -> None:
    await _seed(database_url)
    run = await notifier(database_url, "report", "dwell", "--from", "2026-11-01", "--to", "2026-11-30")
    assert run.code == 0, run.err
    lines = run.out.splitlines()

    def row(label: str) -> list[str]:
        found = [line.split() for line in lines if line.startswith(label)]
        assert len(found) == 1, f"one row {label!r} in:\n{run.out}"
        return found[0][len(label.split()) :]

    assert "pickups 2026-11-01 to 2026-11-30 (Hong Kong time)" in lines[0]
    # p50 p75 p90 p95, PostgreSQL's continuous percentiles: of 1..10 h, 5.5 h 7.75 h 9.1 h 9.55 h.
    assert row("all pickups") == ["18", "7.5h", "24.0h", "24.0h", "24.0h"]
    assert row("Kwun Tong") == ["10", "5.5h", "7.8h", "9.1h", "9.6h"]
    assert row("Mong Kok") == ["6", "24.0h", "24.0h", "24.0h", "24.0h"]
    assert row("Tue 15:00-15:59") == ["10", "5.5h", "7.8h", "9.1h", "9.6h"]
    assert row("Sat 10:00-10:59") == ["6", "24.0h", "24.0h", "24.0h", "24.0h"]
    assert not any(line.startswith(("Sha Tin", "Sun 09", "Mon 23")) for line in lines)
    assert run.out.count("2 pickup(s) in groups of fewer than 5 not shown") == 2
    assert all(order not in run.out for order in ("KT-", "MK-", "ST-", "OUT-", "WAIT-"))

    small = await notifier(
        database_url,
        "report",
        "dwell",
        "--from",
        "2026-11-29",
        "--to",
        "2026-11-30",
        "--by",
        "place",
        "--min-count",
        "1",
    )
    assert small.code == 0, small.err
    assert [line.split()[:3] for line in small.out.splitlines() if line.startswith("Sha Tin")] == [
        ["Sha", "Tin", "2"]
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-30", "--to", "2026-11-01"], "--from 2026-11-30 is after --to 2026-11-01"),
        (["--from", "2024-01-01", "--to", "2026-11-30"], "at most 366"),
        (["--from", "30/11/2026"], "--from must be a date YYYY-MM-DD"),
        (["--to", "2099-01-01"], "is after today"),
        (["--min-count", "0"], "--min-count must be 1 to 1000"),
    ],
)
async def test_report_dwell_refuses_an_unbounded_or_bad_range(
    database_url: str, args: list[str], message: str
) -> None:
    run = await notifier(database_url, "report", "dwell", *args)
    assert run.code == 2
    assert message in run.err
    assert "Traceback" not in run.err
