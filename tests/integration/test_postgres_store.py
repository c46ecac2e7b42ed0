"""The store's contract on a real PostgreSQL: claims, re-claims, outcomes and the outbox."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from service.domain.errors import StoreUnavailable
from service.domain.lifecycle import HELD_NOTIFICATION, State
from service.domain.milestones import Milestone, milestone_for
from service.domain.model import InboundRecord, ShipmentUpdate, notification_id
from service.domain.outcome import Lease, OutboxRow, Outcome
from service.store.migrate import migrate, migration_files
from service.store.postgres import PostgresStore
from tests.builders import claim, update

pytestmark = pytest.mark.integration

M = Milestone.ARRIVED_HK_WAREHOUSE


async def test_migrations_apply_once_even_when_run_concurrently(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    applied = [name for r in results for name in r]
    assert applied == [name for name, _ in migration_files()]  # each once, in order, by one of them
    assert applied[0] == "0001_initial.sql"


async def test_a_pair_is_granted_once_and_an_unfinished_claim_is_granted_again(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        first = await store.claim([claim("A"), claim("B")])
        assert sorted(c.claims for c in first) == [1, 1]
        again = await store.claim([claim("A")])  # A never finished: a crash mid-send
        assert [(c.notification_id, c.claims) for c in again] == [(notification_id("A", M), 2)]

        outcome = Outcome(
            notification_id("B", M), update("B"), M, "sent", "sms", datetime.now(UTC), provider="p"
        )
        row = OutboxRow(uuid.uuid4(), outcome.notification_id, "B", b"{}")
        await store.finish([outcome], [row])
        assert await store.claim([claim("B")]) == []  # decided: a duplicate from now on

        # Known only from their notifications (no event recorded): read before every event.
        assert await store.first_reads(["A", "B", "C"]) == {("A", M): 0, ("B", M): 0}
        # A stale verdict is claimed like any other: the decision and its receipt come together.
        stale = await store.claim([claim("C", state="suppressed_stale")])
        assert [c.claims for c in stale] == [1]
        assert [c.claims for c in await store.claim([claim("C", state="suppressed_stale")])] == [2]
        settled = Outcome(
            notification_id("C", M), update("C"), M, "suppressed_stale", "none", datetime.now(UTC)
        )
        await store.finish([settled], [OutboxRow(uuid.uuid4(), settled.notification_id, "C", b"{}")])
        assert await store.claim([claim("C", state="suppressed_stale")]) == []
    finally:
        await store.close()


async def test_a_re_claim_says_whether_an_earlier_claim_began_an_email(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        first = {c.notification_id: c for c in await store.claim([claim("A"), claim("B")])}
        a, b = first[notification_id("A", M)], first[notification_id("B", M)]
        assert not any(c.email_attempted for c in first.values())
        await store.note_email_attempt(a.notification_id)
        await store.note_email_attempt(a.notification_id)  # once is enough; again changes nothing
        again = {c.notification_id: c for c in await store.claim([claim("A"), claim("B")])}
        assert again[a.notification_id].email_attempted
        assert not again[b.notification_id].email_attempted
        assert again[a.notification_id].first_claimed_at == a.first_claimed_at
    finally:
        await store.close()


async def test_an_owed_fallback_is_leased_to_one_taker_until_decided(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        await store.claim([claim("A")])
        nid = notification_id("A", M)
        sent = Outcome(nid, update("A"), M, "sent", "sms", datetime.now(UTC), provider="p", reference="r1")
        await store.finish([sent], [OutboxRow(uuid.uuid4(), nid, "A", b"{}")])
        receipt = OutboxRow(uuid.uuid4(), nid, "A", b"{}")
        assert await store.record_delivery(nid, "r1", "undelivered", "p_30003", receipt, fallback_in_s=0)
        [due] = await store.due_fallbacks(10, lease_s=60)
        assert (due.notification_id, due.state, due.fallback_attempts) == (nid, "undelivered", 2)
        assert await store.due_fallbacks(10, lease_s=60) == []  # leased: another taker skips it
        await store.fallback_later(nid, 0)
        assert [t.fallback_attempts for t in await store.due_fallbacks(10, lease_s=60)] == [3]
        email = Outcome(nid, update("A"), M, "sent", "email", datetime.now(UTC), provider="e", reference="r3")
        await store.finish([email], [OutboxRow(uuid.uuid4(), nid, "A", b"{}")])
        await store.fallback_later(nid, 0)  # decided: no longer owed, so this changes nothing
        assert await store.due_fallbacks(10, lease_s=0) == []
    finally:
        await store.close()


async def test_sms_sends_without_a_final_status_are_leased_for_look_ups_one_taker_at_a_time(
    database_url: str,
) -> None:
    store = await PostgresStore.connect(database_url)
    other = await PostgresStore.connect(database_url)  # a second instance
    try:
        orders = [f"S{i}" for i in range(6)]
        await store.claim([claim(o) for o in [*orders, "E", "D"]])
        outcomes = [
            Outcome(
                notification_id(o, M),
                update(o),
                M,
                "sent",
                "sms",
                datetime.now(UTC),
                provider="twilio",
                provider_message_id=f"SM{o}",
                reference=f"{o}.1",
            )
            for o in [*orders, "D"]
        ]
        email = Outcome(
            notification_id("E", M), update("E"), M, "sent", "email", datetime.now(UTC), provider="e"
        )
        await store.finish([*outcomes, email], [OutboxRow(uuid.uuid4(), o.notification_id, o.update.order_id, b"{}") for o in [*outcomes, email]])  # fmt: skip
        d = notification_id("D", M)
        assert await store.record_delivery(
            d, "D.1", "delivered", None, OutboxRow(uuid.uuid4(), d, "D", b"{}")
        )

        assert await store.due_status_checks(10, lease_s=60, after_s=3600) == []  # too early
        first, second = await asyncio.gather(
            store.due_status_checks(3, lease_s=60, after_s=0),
            other.due_status_checks(10, lease_s=60, after_s=0),
        )
        taken = [a.notification_id for a in [*first, *second]]
        # each SMS still 'sent' once, to one taker; not the email, not the delivered one
        assert sorted(taken) == sorted(notification_id(o, M) for o in orders)
        assert len(first) <= 3
        assert {(a.message_id, a.checks, a.target.provider) for a in first} <= {(f"SM{o}", 1, "twilio") for o in orders}  # fmt: skip
        assert all(a.sent_at is not None for a in [*first, *second])
        assert await store.due_status_checks(10, lease_s=60, after_s=0) == []  # leased

        a, b, c = (notification_id(o, M) for o in orders[:3])
        await store.status_check_later(a, 0)
        await store.status_given_up(b)
        await store.status_check_later(c, 3600)
        [again] = await store.due_status_checks(10, lease_s=60, after_s=0)
        assert (again.notification_id, again.checks) == (a, 2)
        await store.status_check_later(b, 0)  # given up: no more look-ups
        assert await store.due_status_checks(10, lease_s=0, after_s=0) == []
    finally:
        await store.close()
        await other.close()


async def test_outbox_rows_are_listed_until_published(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        await store.claim([claim("A")])
        outcome = Outcome(notification_id("A", M), update("A"), M, "sent", "sms", datetime.now(UTC))
        row = OutboxRow(uuid.uuid4(), outcome.notification_id, "A", b'{"x": 1}')
        await store.finish([outcome], [row])
        await store.finish([outcome], [row])  # a retried transaction writes no second receipt
        assert await store.unpublished_receipts() == [row]
        lease = Lease("relay", 60)
        assert await store.take_receipts(lease) == [row]  # written without a lease: free for the relay
        assert await store.take_receipts(Lease("another", 60)) == []
        assert await store.complete_receipts(lease, [row]) == []
        assert await store.unpublished_receipts() == []
    finally:
        await store.close()


async def test_events_are_recorded_once(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    rec = InboundRecord("t", 1, 42, b"A", b"{}", 0)
    try:
        await store.record_events([(rec, update("A"), "arrived_hk_warehouse")])
        await store.record_events([(rec, update("A"), "arrived_hk_warehouse")])
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT source_topic, source_partition, source_offset FROM shipment_events"
            )
        finally:
            await conn.close()
        assert [tuple(r) for r in rows] == [("t", 1, 42)]
    finally:
        await store.close()


async def test_each_milestone_has_the_place_of_its_first_read_whatever_is_read_again(
    database_url: str,
) -> None:
    store = await PostgresStore.connect(database_url)

    def ev(order: str, status: str, n: int = 1) -> tuple[InboundRecord, ShipmentUpdate, str | None]:
        u = update(order, status, event_id=f"{order}-{status}-{n}")
        m = milestone_for(status)
        return InboundRecord("t", 0, 0, order.encode(), b"{}", 0), u, m.value if m else None

    R, C = Milestone.READY_FOR_PICKUP, Milestone.CUSTOMS_CLEARED
    orders = [f"O{i:02d}" for i in range(40)]
    try:
        # One batch: places follow the batch's order (not the array's physical order by chance).
        batch = [
            ev(o, s) for o in reversed(orders) for s in ("READY_FOR_PICKUP", "IN_TRANSIT", "CUSTOMS_CLEARED")
        ]
        await store.record_events(batch)
        reads = await store.first_reads(orders)
        ordered = [reads[(o, m)] for o in reversed(orders) for m in (R, C)]
        assert ordered == sorted(ordered)
        assert len(set(ordered)) == len(ordered)
        # Read again in another order, re-sent by the TMS, or both: every first place stays.
        await store.record_events([ev("O00", "CUSTOMS_CLEARED"), ev("O00", "READY_FOR_PICKUP")])
        await store.record_events([ev("O00", "READY_FOR_PICKUP", n=2), ev("O00", "ARRIVED_HK_WAREHOUSE")])
        again = await store.first_reads(["O00"])
        assert (again[("O00", R)], again[("O00", C)]) == (reads[("O00", R)], reads[("O00", C)])
        assert again[("O00", M)] > max(ordered)  # a milestone read for the first time now
        assert len(again) == 3

        # Recorded before places existed (migration 0011): read before every event with a place.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO shipment_events (event_id, order_id, tms_status, milestone, occurred_at,"
                " source_topic, source_partition, source_offset, read_seq)"
                " VALUES ('old', 'OLD', 'READY_FOR_PICKUP', 'ready_for_pickup', now(), 't', 0, 0, NULL)"
            )
        finally:
            await conn.close()
        await store.record_events([ev("OLD", "ARRIVED_HK_WAREHOUSE")])
        old = await store.first_reads(["OLD"])
        assert old[("OLD", R)] == 0 < old[("OLD", M)]
    finally:
        await store.close()


async def test_unreachable_database_is_a_store_error_not_a_driver_error() -> None:
    from service.domain.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        await PostgresStore.connect("postgresql://nobody@127.0.0.1:1/none")


async def test_the_state_column_holds_only_the_life_cycles_states(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        async with store.pool.acquire() as conn:
            definition = await conn.fetchval(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conname = 'notifications_state_check' AND conrelid = 'notifications'::regclass"
            )
        assert re.findall(r"'([a-z_]+)'::text", definition) == [s.value for s in State]

        await store.claim([claim("A")])
        nid = notification_id("A", M)
        held = Outcome(nid, update("A"), M, HELD_NOTIFICATION, "none", datetime.now(UTC))  # never a state
        with pytest.raises(StoreUnavailable):
            await store.finish([held], [OutboxRow(uuid.uuid4(), nid, "A", b"{}")])
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SELECT state FROM notifications WHERE id = $1", nid) == State.CLAIMED
            assert await conn.fetchval("SELECT count(*) FROM receipt_outbox") == 0  # the whole transaction
    finally:
        await store.close()
