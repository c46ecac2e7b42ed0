"""The store's contract on a real PostgreSQL: claims, re-claims, outcomes and the outbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, Recipient, ShipmentUpdate, notification_id
from service.domain.outcome import ClaimRequest, Lease, OutboxRow, Outcome
from service.store.migrate import migrate, migration_files
from service.store.postgres import PostgresStore

pytestmark = pytest.mark.integration

M = Milestone.ARRIVED_HK_WAREHOUSE


def update(order: str, event: str = "e1") -> ShipmentUpdate:
    return ShipmentUpdate(
        event_id=f"{order}-{event}",
        order_id=order,
        waybill="WB",
        tms_status="ARRIVED_HK_WAREHOUSE",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        bike_model="Tarmac",
        recipient=Recipient(name="n", phone="91234567", email=None),
    )


def claim(order: str, milestone: Milestone = M, state: str = "claimed") -> ClaimRequest:
    return ClaimRequest(notification_id(order, milestone), update(order), milestone, state)


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

        assert await store.highest_ranks(["A", "B", "C"]) == {"A": M.rank, "B": M.rank}
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


async def test_unreachable_database_is_a_store_error_not_a_driver_error() -> None:
    from service.domain.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        await PostgresStore.connect("postgresql://nobody@127.0.0.1:1/none")
