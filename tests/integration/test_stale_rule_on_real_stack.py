"""The stale rule after a crash, on real Kafka, PostgreSQL and the sandbox (issue 11, item 6).

An attempt killed mid-batch leaves, in PostgreSQL, its events recorded and claims for some
(order, milestone) pairs, perhaps some sends recorded. Here that state is written exactly (the
events as they sit on the topic, the claims the attempt had taken) and a service then reads the
partition again from its first uncommitted record: decisions must be those of a run without
the crash.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from service.app import Service
from service.contracts import parse_event
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, notification_id
from service.domain.outcome import ClaimRequest, OutboxRow, Outcome
from service.domain.plan import is_stale
from service.kafka.consumer import read_all
from service.sandbox.serve import SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from tests.integration.helpers import event, group_caught_up, produce, running, wait_until

pytestmark = pytest.mark.integration

A, R = Milestone.ARRIVED_HK_WAREHOUSE, Milestone.READY_FOR_PICKUP


@pytest.mark.parametrize("later_sent", [False, True], ids=["later-claimed", "later-recorded-sent"])
async def test_an_earlier_milestone_read_again_after_a_crash_is_sent_not_stale(
    settings: Settings, sandbox: tuple[SandboxState, str], later_sent: bool
) -> None:
    state, _ = sandbox
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.input_topics[0]
    # One order, ARRIVED then READY, on one partition (keyed by order id), in one batch.
    await produce(
        bootstrap, topic, [event("IT-0601", "ARRIVED_HK_WAREHOUSE"), event("IT-0601", "READY_FOR_PICKUP")]
    )
    records = sorted(await read_all(bootstrap, topic), key=lambda r: r.offset)
    batch = [InboundRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in records]
    arrived, ready = (parse_event(r.value) for r in batch)

    # The interrupted attempt: both events recorded, READY claimed (and, with concurrent sends,
    # perhaps already sent and recorded), killed before ARRIVED's send was recorded.
    store = await PostgresStore.connect(settings.database_url)
    try:
        await store.record_events([(batch[0], arrived, A.value), (batch[1], ready, R.value)])
        claims = [ClaimRequest(notification_id("IT-0601", R), ready, R, "claimed")]
        if later_sent:
            claims.append(ClaimRequest(notification_id("IT-0601", A), arrived, A, "claimed"))
        await store.claim(claims)
        if later_sent:
            nid = notification_id("IT-0601", R)
            sent = Outcome(nid, ready, R, "sent", "sms", datetime.now(UTC), provider="twilio", reference="r")
            await store.finish([sent], [OutboxRow(uuid.uuid4(), nid, "IT-0601", b"{}")])
    finally:
        await store.close()

    async with running(Service(settings)):  # a new consumer group: the batch is read again
        await wait_until(
            lambda: group_caught_up(bootstrap, settings.consumer_group, topic),
            what="the re-read to commit every offset",
        )

    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = {r["milestone"]: r for r in await conn.fetch("SELECT * FROM notifications")}
    finally:
        await conn.close()
    assert rows[A.value]["state"] in {"sent", "delivered"}, "ARRIVED came first: it must be sent, not stale"
    assert rows[R.value]["state"] in {"sent", "delivered"}
    # ARRIVED's SMS reached the provider; READY's too, unless its send was recorded before the crash.
    texted = {m.sid for m in state.messages}
    assert rows[A.value]["provider_message_id"] in texted
    assert len(texted) == (1 if later_sent else 2)


async def test_a_retention_purge_keeps_the_history_the_stale_rule_reads(database_url: str) -> None:
    # READY was read and sent; retention then destroys the order's personal data. A late ARRIVED
    # is still stale: the event history (ids, codes, places) is not personal data and stays.
    store = await PostgresStore.connect(database_url)
    try:
        ready = parse_event(event("IT-0602", "READY_FOR_PICKUP")[1])
        await store.record_events([(InboundRecord("t", 0, 0, b"IT-0602", b"{}", 0), ready, R.value)])
        nid = notification_id("IT-0602", R)
        await store.claim([ClaimRequest(nid, ready, R, "claimed", phone_subject=b"\x01" * 32)])
        sent = Outcome(nid, ready, R, "sent", "sms", datetime.now(UTC), provider="twilio", reference="r")
        await store.finish([sent], [OutboxRow(uuid.uuid4(), nid, "IT-0602", b"{}")])
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE notifications SET updated_at = now() - interval '100 days'")
        finally:
            await conn.close()
        purged = await PrivacyStore(store.pool).purge(retention_days=90, link_ttl_days=90)
        assert purged.subjects == 1  # the order's personal data is gone

        arrived = parse_event(event("IT-0602", "ARRIVED_HK_WAREHOUSE")[1])
        await store.record_events([(InboundRecord("t", 0, 1, b"IT-0602", b"{}", 0), arrived, A.value)])
        assert is_stale("IT-0602", A, await store.first_reads(["IT-0602"]))
    finally:
        await store.close()
