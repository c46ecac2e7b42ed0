"""Quiet hours and coalescing on real Kafka and PostgreSQL, with an injected clock (no real waiting
for 09:00): a notification decided inside the window is scheduled durably, released at the window's
end (paced, not a burst), once across a restart and across two instances; milestones of one order
due together send only the latest."""

from __future__ import annotations

import asyncio
import collections
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from service.app import Service
from service.domain.due_sends import DueKind
from service.domain.quiet_hours import HKT
from service.sandbox.serve import SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.staff import StaffStore
from tests.integration.conftest import free_port
from tests.integration.helpers import event, produce, read_topic, running, wait_until

pytestmark = pytest.mark.integration

NIGHT = datetime(2026, 11, 21, 2, 0, tzinfo=HKT)
WINDOW_END = datetime(2026, 11, 21, 9, 0, tzinfo=HKT)


class Clock:
    """The service's time, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


def quiet(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(
        update={
            "quiet_hours": "21:30-09:00",
            "quiet_release_interval_s": 0.05,
            "quiet_release_rate_per_s": 5.0,
            **update,
        }
    )


def at(when: datetime, order: str, status: str, n: int = 1, **kw: object) -> tuple[bytes, bytes]:
    return event(order, status, n=n, occurred_at=when.isoformat(), **kw)


async def receipts(s: Settings, at_least: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    async def enough() -> bool:
        nonlocal found
        records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=1)
        found = [json.loads(r.value) for r in records]
        return len([d for d in found if d["outcome"] != "delivered"]) >= at_least

    await wait_until(enough, what=f"{at_least} receipts")
    return [d for d in found if d["outcome"] != "delivered"]


async def settle(seconds: float = 0.5) -> None:
    """Let the release job run several times (every 0.05 s) at the clock's present time."""
    await asyncio.sleep(seconds)


async def scheduled_rows(s: Settings) -> int:
    conn = await asyncpg.connect(s.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM scheduled_sends"))
    finally:
        await conn.close()


async def support_answer(s: Settings, service: Service, order: str) -> dict[str, object]:
    """The support API's answer for ``order``, as an agent sees it."""
    pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=1)
    try:
        token = await StaffStore(pool).add(f"agent-{order.lower()}", "cs_agent")
    finally:
        await pool.close()
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{service.http_port}/api/cs/orders",
            params={"q": order},
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        assert r.status == 200
        answer: dict[str, object] = await r.json()
        return answer


async def test_an_event_at_two_hkt_is_sent_at_the_windows_end_not_before_and_once_across_a_restart(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = quiet(settings)
    clock = Clock(NIGHT)
    await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(NIGHT, "QH-0001", "CUSTOMS_CLEARED")])

    async with running(Service(s, clock=clock)) as service:
        [scheduled] = await receipts(s, 1)
        assert scheduled["outcome"] == "scheduled"
        assert scheduled["reason"] == "quiet_hours"
        assert datetime.fromisoformat(str(scheduled["scheduled_for"])) == WINDOW_END
        # The support page says when it goes: the first slot after the window, 09:00 HKT.
        [card] = (await support_answer(s, service, "QH-0001"))["notifications"]  # type: ignore[misc]
        assert card["state"] == "scheduled"
        assert datetime.fromisoformat(card["release_planned_at"]) == WINDOW_END
        upcoming = [step for step in card["steps"] if step["upcoming"]]
        assert [(step["time"], step["what"]["en"]) for step in upcoming] == [
            ("2026-11-21 09:00", "Goes after the quiet hours")
        ]
        clock.now = WINDOW_END - timedelta(seconds=1)  # 08:59:59: still inside
        await settle()
        assert state.messages == []
    assert await scheduled_rows(s) == 1  # durable: in PostgreSQL, not a timer of the stopped instance

    # Restarted mid-window; the TMS re-sends the event meanwhile: a duplicate, not a second schedule.
    clock.now = NIGHT + timedelta(hours=3)
    await produce(
        s.kafka_bootstrap_servers, s.input_topics[0], [at(NIGHT, "QH-0001", "CUSTOMS_CLEARED", n=2)]
    )
    async with running(Service(s, clock=clock)):
        await settle()
        assert state.messages == []
        clock.now = WINDOW_END
        await wait_until(lambda: len(state.messages) == 1, what="the release at the window's end")
        clock.now = WINDOW_END + timedelta(minutes=5)
        await settle()
        decisions = await receipts(s, 2)

    assert len(state.messages) == 1, "sent twice"
    assert "QH-0001" in state.messages[0].body
    assert [d["outcome"] for d in decisions] == ["scheduled", "sent"]
    assert decisions[0]["notification_id"] == decisions[1]["notification_id"]
    assert datetime.fromisoformat(str(decisions[1]["decided_at"])) >= WINDOW_END  # never before
    assert await scheduled_rows(s) == 0


async def test_the_release_is_paced_from_the_windows_end_not_a_burst(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = quiet(settings, quiet_release_rate_per_s=5.0)  # one every 0.2 s from 09:00:00
    clock = Clock(NIGHT)
    orders = [f"QP-{i:04d}" for i in range(10)]
    await produce(
        s.kafka_bootstrap_servers,
        s.input_topics[0],
        [at(NIGHT, o, "ARRIVED_HK_WAREHOUSE", phone=f"9{3_000_000 + i:07d}") for i, o in enumerate(orders)],
    )
    async with running(Service(s, clock=clock)):
        await receipts(s, len(orders))
        clock.now = WINDOW_END  # 09:00:00.000: only slot 0 is due
        await wait_until(lambda: len(state.messages) == 1, what="the first release")
        await settle()
        assert len(state.messages) == 1
        clock.now = WINDOW_END + timedelta(seconds=1)  # slots 0..5 (0.0 s to 1.0 s)
        await wait_until(lambda: len(state.messages) == 6, what="a second's worth of releases")
        await settle()
        assert len(state.messages) == 6
        clock.now = WINDOW_END + timedelta(seconds=2)
        await wait_until(lambda: len(state.messages) == 10, what="every release")
    assert collections.Counter(m.to for m in state.messages).most_common(1)[0][1] == 1


async def test_two_instances_release_each_scheduled_notification_once(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    first = quiet(settings, quiet_release_rate_per_s=1000.0)
    second = first.model_copy(update={"http_port": free_port(), "callback_base_url": None})
    clock = Clock(NIGHT)
    orders = [f"QT-{i:04d}" for i in range(40)]
    await produce(
        first.kafka_bootstrap_servers,
        first.input_topics[0],
        [at(NIGHT, o, "CUSTOMS_CLEARED", phone=f"9{4_000_000 + i:07d}") for i, o in enumerate(orders)],
    )
    async with running(Service(first, clock=clock)), running(Service(second, clock=clock)):
        await receipts(first, len(orders))
        assert state.messages == []
        clock.now = WINDOW_END + timedelta(minutes=1)
        await wait_until(lambda: len(state.messages) >= len(orders), what="every release")
        await settle(1.0)
    sends = collections.Counter(m.to for m in state.messages)
    assert len(sends) == len(orders)
    assert max(sends.values()) == 1, "a scheduled notification was released twice"
    assert await scheduled_rows(first) == 0


async def test_three_milestones_due_together_send_one_sms_and_two_superseded_receipts(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = quiet(settings)
    clock = Clock(NIGHT)
    statuses = ["ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP"]
    await produce(
        s.kafka_bootstrap_servers,
        s.input_topics[0],
        [at(NIGHT + timedelta(minutes=10 * i), "QC-0001", st) for i, st in enumerate(statuses)],
    )
    service = Service(s, clock=clock)
    with capture_logs() as logs:
        async with running(service):
            scheduled = await receipts(s, 3)
            assert [d["outcome"] for d in scheduled] == ["scheduled"] * 3
            clock.now = WINDOW_END + timedelta(seconds=10)
            await wait_until(lambda: len(state.messages) == 1, what="the latest milestone's SMS")
            decisions = await receipts(s, 6)
            await settle()
            metrics = service.metrics.render().decode()

    assert len(state.messages) == 1
    later = {d["milestone"]: d for d in decisions[3:]}
    assert {m: d["outcome"] for m, d in later.items()} == {
        "arrived_hk_warehouse": "suppressed_superseded",
        "customs_cleared": "suppressed_superseded",
        "ready_for_pickup": "sent",
    }
    assert later["arrived_hk_warehouse"]["reason"] == "superseded_by_later_milestone"
    assert later["arrived_hk_warehouse"]["channel"] == "none"
    assert len({d["receipt_id"] for d in decisions}) == 6
    assert 'notifier_scheduled_releases_total{result="suppressed_superseded"} 2.0' in metrics
    assert 'notifier_scheduled_releases_total{result="sent"} 1.0' in metrics
    conn = await asyncpg.connect(s.database_url)
    try:
        states = dict(await conn.fetch("SELECT milestone, state FROM notifications"))
        rows = []
        for table in ("notifications", "scheduled_sends", "release_slots", "receipt_outbox"):
            rows += await conn.fetch(f"SELECT * FROM {table}")  # noqa: S608  # fixed table names
    finally:
        await conn.close()
    assert states["arrived_hk_warehouse"] == states["customs_cleared"] == "suppressed_superseded"
    assert states["ready_for_pickup"] in {"sent", "delivered"}
    assert any(e["event"] == "scheduled_released" for e in logs)  # the logs were captured
    # No personal data on the new paths: the schedule, its receipts, logs, metrics.
    text = "\n".join(str(dict(r)) for r in rows) + json.dumps(decisions) + repr(logs) + metrics
    for pii in ("9123 4567", "91234567", "+85291234567", "Test Customer", "customer@example.com"):
        assert pii not in text


async def test_a_release_whose_taker_died_goes_once_when_its_lease_ends(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = quiet(settings, quiet_release_lease_s=60.0)
    clock = Clock(NIGHT)
    await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(NIGHT, "QL-0001", "CUSTOMS_CLEARED")])
    async with running(Service(s, clock=clock)):
        await receipts(s, 1)
    # Another instance took it at 09:00 and died before sending: the row is leased to it.
    store = await PostgresStore.connect(s.database_url)
    try:
        taken = await store.take_due(
            DueKind.NOTIFICATION, now=clock(), limit=10, lease_s=60.0, rate_per_s=5.0
        )
        assert taken == []  # not due before the window's end
        clock.now = WINDOW_END
        [dead] = await store.take_due(
            DueKind.NOTIFICATION, now=clock(), limit=10, lease_s=60.0, rate_per_s=5.0
        )
        assert dead.releases == 1
        assert not dead.retaken
    finally:
        await store.close()
    clock.now = WINDOW_END + timedelta(seconds=30)
    async with running(Service(s, clock=clock)):
        await settle()
        assert state.messages == [], "taken while another instance's lease held it"
        clock.now = WINDOW_END + timedelta(seconds=61)
        await wait_until(lambda: len(state.messages) == 1, what="the release once the lease ended")
        await settle()
        decisions = await receipts(s, 2)
    assert len(state.messages) == 1
    assert [d["outcome"] for d in decisions] == ["scheduled", "sent"]
    assert await scheduled_rows(s) == 0
