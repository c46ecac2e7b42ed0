"""The scheduled sends on PostgreSQL: slots per window's end continue across writes, two takers at
once never take the same row, a lease keeps a row from others until it ends, held rows come back
after their back-off, and the planned release time is the paced one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from service.domain.due_sends import DueKind
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.outcome import Outcome
from service.report.receipts import receipt_row
from service.store.postgres import PostgresStore
from tests.builders import claim

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 HKT
N = DueKind.NOTIFICATION


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[PostgresStore]:
    s = await PostgresStore.connect(database_url, pool_size=4)
    try:
        yield s
    finally:
        await s.close()


async def schedule(store: PostgresStore, orders: list[str], m: Milestone = Milestone.CUSTOMS_CLEARED) -> None:
    requests = [claim(o, m) for o in orders]
    await store.claim(requests)
    outcomes = [
        Outcome(
            r.notification_id,
            r.update,
            m,
            State.SCHEDULED,
            "none",
            END,
            reason="quiet_hours",
            scheduled_for=END,
        )
        for r in requests
    ]
    await store.finish(outcomes, [receipt_row(o) for o in outcomes])


async def test_slots_continue_across_writes_and_releases_are_paced_from_the_end(store: PostgresStore) -> None:
    await schedule(store, ["S1", "S2"])
    await schedule(store, ["S3"])
    ids = [claim(o, Milestone.CUSTOMS_CLEARED).notification_id for o in ("S1", "S2", "S3")]
    assert await store.scheduled_backlog(now=END - timedelta(hours=1)) == (3, 0.0)  # none due yet
    assert await store.scheduled_backlog(now=END + timedelta(seconds=90)) == (3, 90.0)
    planned = await store.planned_releases(ids, rate_per_s=2.0)
    assert [planned[i] for i in ids] == [END, END + timedelta(seconds=0.5), END + timedelta(seconds=1)]
    # due by the pace: at END only slot 0, half a second later slots 0 and 1
    assert (
        len(await store.take_due(N, now=END - timedelta(seconds=1), limit=10, lease_s=60, rate_per_s=2.0))
        == 0
    )
    assert len(await store.take_due(N, now=END, limit=10, lease_s=60, rate_per_s=2.0)) == 1
    assert (
        len(await store.take_due(N, now=END + timedelta(seconds=0.5), limit=10, lease_s=60, rate_per_s=2.0))
        == 1
    )
    rows = await store.take_due(N, now=END + timedelta(seconds=5), limit=10, lease_s=60, rate_per_s=2.0)
    assert [r.order_id for r in rows] == ["S3"]  # the first two are leased
    assert rows[0].state == State.SCHEDULED
    assert rows[0].latest_rank == Milestone.CUSTOMS_CLEARED.rank


async def test_two_takers_at_once_never_take_the_same_row(store: PostgresStore, database_url: str) -> None:
    other = await PostgresStore.connect(database_url, pool_size=2)
    later = END + timedelta(hours=1)
    try:
        for round_ in range(8):  # several races: each round's rows are new, the earlier ones leased
            orders = [f"T{round_}-{i:03d}" for i in range(60)]
            await schedule(store, orders)
            a, b = await asyncio.gather(
                store.take_due(N, now=later, limit=40, lease_s=3600, rate_per_s=1000.0),
                other.take_due(N, now=later, limit=40, lease_s=3600, rate_per_s=1000.0),
            )
            taken_a, taken_b = {r.schedule_id for r in a}, {r.schedule_id for r in b}
            assert not taken_a & taken_b, "two takers took the same scheduled send"
            assert len(taken_a | taken_b) == len(orders)
    finally:
        await other.close()


async def test_a_lease_then_a_hold_then_a_retake(store: PostgresStore) -> None:
    await schedule(store, ["L1"])
    [first] = await store.take_due(N, now=END, limit=10, lease_s=60, rate_per_s=5.0)
    assert (first.releases, first.retaken, first.first_released_at) == (1, False, END)
    assert (
        await store.take_due(N, now=END + timedelta(seconds=59), limit=10, lease_s=60, rate_per_s=5.0) == []
    )
    [again] = await store.take_due(N, now=END + timedelta(seconds=60), limit=10, lease_s=60, rate_per_s=5.0)
    assert again.retaken  # its taker never finished: the providers are asked first
    assert again.first_released_at == END
    await store.release_later([again.schedule_id], not_before=END + timedelta(seconds=200), given_back=True)
    assert (
        await store.take_due(N, now=END + timedelta(seconds=199), limit=10, lease_s=60, rate_per_s=5.0) == []
    )
    [held] = await store.take_due(N, now=END + timedelta(seconds=200), limit=10, lease_s=60, rate_per_s=5.0)
    assert held.releases == 2  # the held take was given back
    await store.drop_scheduled([held.schedule_id])
    assert await store.take_due(N, now=END + timedelta(days=1), limit=10, lease_s=60, rate_per_s=5.0) == []


async def test_a_later_milestone_on_its_way_is_the_latest_one_that_failed_is_not(
    store: PostgresStore,
) -> None:
    await schedule(store, ["C1", "C2"], Milestone.ARRIVED_HK_WAREHOUSE)
    for order, state in (("C1", State.SENT), ("C2", State.FAILED)):
        r = claim(order, Milestone.READY_FOR_PICKUP)
        await store.claim([r])
        o = Outcome(r.notification_id, r.update, r.milestone, state, "sms", END)
        await store.finish([o], [receipt_row(o)])
    rows = {
        d.order_id: d
        for d in await store.take_due(N, now=END + timedelta(seconds=5), limit=10, lease_s=60, rate_per_s=5.0)
    }
    assert rows["C1"].latest_rank == Milestone.READY_FOR_PICKUP.rank  # superseded by the sent one
    assert rows["C2"].latest_rank == Milestone.ARRIVED_HK_WAREHOUSE.rank  # the failed one silences nothing
