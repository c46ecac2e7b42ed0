"""The walking skeleton on real Apache Kafka, real PostgreSQL and the sandbox provider over HTTP."""

from __future__ import annotations

import collections
import json
import random
import re

import asyncpg
import pytest

from service.app import Service
from service.sandbox.serve import SandboxState
from service.settings import Settings
from tests.integration.helpers import (
    event,
    group_caught_up,
    produce,
    read_decisions,
    read_topic,
    running,
    wait_until,
)

pytestmark = pytest.mark.integration

MILESTONE_STATUSES = ["ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP"]


def _order_of(body: str) -> str:
    match = re.search(r"IT-\d{4}", body)
    assert match, "every SMS names its order number"
    return match.group(0)


async def test_duplicate_events_send_one_sms_and_one_receipt_per_order_milestone(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    orders = [f"IT-{i:04d}" for i in range(40)]
    messages = []
    for order in orders:
        for n, status in enumerate(MILESTONE_STATUSES, start=1):
            messages.append(event(order, status))
            if n != 2:  # two of three milestones are re-sent by the TMS with a new event id
                messages.append(event(order, status, n=2))
        messages.append(event(order, "CUSTOMS_CLEARED"))  # an exact redelivery of the same event
    random.Random(7).shuffle(orders)
    expected = {(o, s) for o in orders for s in MILESTONE_STATUSES}

    async with running(Service(settings)):
        await produce(settings.kafka_bootstrap_servers, settings.input_topics[0], messages)
        receipts = await read_topic(
            settings.kafka_bootstrap_servers, settings.receipts_topic, at_least=len(expected)
        )
        await wait_until(
            lambda: group_caught_up(
                settings.kafka_bootstrap_servers, settings.consumer_group, settings.input_topics[0]
            ),
            what="the consumer group to commit every offset",
        )

    sms = state.messages
    per_order = collections.Counter(_order_of(m.body) for m in sms)
    assert len(sms) == len(expected)
    assert set(per_order) == set(orders)
    assert all(count == 3 for count in per_order.values())

    # the decisions; the sandbox then reports each SMS delivered, which adds "delivered" receipts
    decoded = await read_decisions(settings.kafka_bootstrap_servers, settings.receipts_topic, len(expected))
    assert len(decoded) == len(expected)
    assert {(d["order_id"], d["milestone"]) for d in decoded} == {(o, s.lower()) for o, s in expected}
    assert {d["outcome"] for d in decoded} == {"sent"}
    assert len({d["receipt_id"] for d in decoded}) == len(decoded)
    assert all(r.key.decode() == json.loads(r.value)["order_id"] for r in receipts)
    delivered = [json.loads(r.value) for r in receipts if json.loads(r.value)["outcome"] == "delivered"]
    assert {d["receipt_id"] for d in delivered}.isdisjoint({d["receipt_id"] for d in decoded})
    assert {m.sid for m in sms} == {d["provider_message_id"] for d in decoded}


async def test_restart_and_reread_from_the_beginning_sends_nothing_new(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    messages = [event(f"IT-{i:04d}", s) for i in range(10) for s in MILESTONE_STATUSES]
    async with running(Service(settings)):
        await produce(settings.kafka_bootstrap_servers, settings.input_topics[0], messages)
        await wait_until(
            lambda: group_caught_up(
                settings.kafka_bootstrap_servers, settings.consumer_group, settings.input_topics[0]
            ),
            what="the first run to commit every offset",
        )
    assert len(state.messages) == 30
    receipts_before = await read_topic(settings.kafka_bootstrap_servers, settings.receipts_topic, at_least=30)

    # A new consumer group starts from the earliest offset: a full replay of the topic.
    replay = settings.model_copy(update={"consumer_group": settings.consumer_group + "-replay"})
    async with running(Service(replay)):
        await wait_until(
            lambda: group_caught_up(
                replay.kafka_bootstrap_servers, replay.consumer_group, replay.input_topics[0]
            ),
            what="the replay to commit every offset",
        )

    assert len(state.messages) == 30
    receipts_after = await read_topic(settings.kafka_bootstrap_servers, settings.receipts_topic, at_least=30)

    def sends(records: list) -> list[str]:  # type: ignore[type-arg]
        return [r.value for r in records if json.loads(r.value)["outcome"] != "delivered"]

    assert sorted(sends(receipts_after)) == sorted(sends(receipts_before))
    assert len(sends(receipts_after)) == 30


async def test_malformed_event_goes_to_dead_letter_topic_and_later_events_still_flow(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    bad_json = (b"IT-0001", b'{"event_id": "broken", "order_id": "IT-0001", "status": ')
    missing_fields = (
        b"IT-0002",
        json.dumps({"event_id": "e2", "order_id": "IT-0002", "status": "CUSTOMS_CLEARED"}).encode(),
    )
    good = event("IT-0003", "ARRIVED_HK_WAREHOUSE")
    async with running(Service(settings)):
        # one partition key for all three, so the good event sits behind the bad ones
        await produce(
            settings.kafka_bootstrap_servers,
            settings.input_topics[0],
            [(b"same-key", bad_json[1]), (b"same-key", missing_fields[1]), (b"same-key", good[1])],
        )
        dead = await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic, at_least=2)
        await wait_until(lambda: len(state.messages) == 1, what="the good event's SMS")

    assert len(dead) == 2
    headers = [dict(d.headers) for d in dead]
    assert [h["dlq.reason"] for h in headers] == [b"malformed_json", b"invalid_event"]
    assert all(h["dlq.source_topic"] == settings.input_topics[0].encode() for h in headers)
    assert b"waybill" in headers[1]["dlq.detail"]  # the detail says which field is wrong
    assert dead[0].value == bad_json[1]  # the original bytes are kept for replay
    assert _order_of(state.messages[0].body) == "IT-0003"


async def test_state_is_durable_in_postgres_and_holds_no_personal_data(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    async with running(Service(settings)):
        await produce(
            settings.kafka_bootstrap_servers,
            settings.input_topics[0],
            [event("IT-0100", "ARRIVED_HK_WAREHOUSE", phone="+852 6123 4567")],
        )
        await read_topic(settings.kafka_bootstrap_servers, settings.receipts_topic, at_least=1)
        await wait_until(
            lambda: group_caught_up(
                settings.kafka_bootstrap_servers, settings.consumer_group, settings.input_topics[0]
            ),
            what="the offset commit",
        )
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM notifications WHERE order_id = 'IT-0100'")
        unpublished = await conn.fetchval("SELECT count(*) FROM receipt_outbox WHERE published_at IS NULL")
        rows = []
        for table in ("notifications", "shipment_events", "receipt_outbox"):
            rows += await conn.fetch(f"SELECT * FROM {table}")  # noqa: S608  # fixed table names
        dump = "\n".join(str(dict(r)) for r in rows)
    finally:
        await conn.close()
    assert row is not None
    assert row["state"] in {"sent", "delivered"}  # the sandbox reports delivery soon after
    assert row["provider"] == "twilio"
    assert unpublished == 0
    for pii in ("6123 4567", "61234567", "Test Customer", "customer@example.com"):
        assert pii not in dump


async def test_batches_in_flight_keep_each_orders_events_in_order(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    """Two small batches in flight at once, a slow provider, and the orders' events spread so that
    each batch shares orders with the one before it: every milestone is sent (none taken for stale
    by a later one overtaking it), each order's SMS in milestone order, every offset committed."""
    from service.sandbox.faults import Fault

    state, _ = sandbox
    state.set_fault("twilio", Fault(latency_ms=30))
    tuned = settings.model_copy(update={"batches_in_flight": 2, "batch_max_records": 4})
    orders = [f"IT-{i:04d}" for i in range(6)]
    messages = [event(o, s) for s in MILESTONE_STATUSES for o in orders]  # milestone by milestone
    async with running(Service(tuned)):
        await produce(tuned.kafka_bootstrap_servers, tuned.input_topics[0], messages)
        decided = await read_decisions(tuned.kafka_bootstrap_servers, tuned.receipts_topic, len(messages))
        await wait_until(
            lambda: group_caught_up(
                tuned.kafka_bootstrap_servers, tuned.consumer_group, tuned.input_topics[0]
            ),
            what="the consumer group to commit every offset",
        )
    assert sorted(d["outcome"] for d in decided) == ["sent"] * len(messages)
    by_order: dict[str, list[str]] = collections.defaultdict(list)
    for m in state.messages:
        by_order[_order_of(m.body)].append(m.body)
    assert sorted(by_order) == orders
    for order in orders:
        sent = [
            d["milestone"] for d in sorted(decided, key=lambda d: d["decided_at"]) if d["order_id"] == order
        ]
        assert sent == [s.lower() for s in MILESTONE_STATUSES]
