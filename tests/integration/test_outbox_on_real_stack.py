"""Receipts on the real stack: every notification's receipts reach the topic in the order its
outcomes happened, each ``receipt_id`` once, with the relay racing batches in flight and other
instances (real Kafka, PostgreSQL, and the sandbox sending delivery callbacks at once)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import pytest

from service.app import Service
from service.domain.outcome import OutboxRow
from service.domain.ports import NotificationStore
from service.kafka.producer import ReceiptPublisher, build_producer
from service.report.outbox import Outbox
from service.sandbox.serve import SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from tests.contracts.outbox import OutboxRules, _claimed, _delivered, _sent
from tests.integration.conftest import free_port
from tests.integration.helpers import event, produce, read_topic, wait_until
from tests.integration.test_delivery_on_real_stack import running

pytestmark = pytest.mark.integration


async def receipts_on_topic(s: Settings) -> list[dict[str, str]]:
    """Every receipt on the topic, each partition in its order (a notification's share one)."""
    records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=2)
    return [json.loads(r.value) for r in sorted(records, key=lambda r: (r.partition, r.offset))]


async def until_reported(s: Settings, sends: int, timeout_s: float = 90) -> None:
    """Wait until ``sends`` notifications have a sent and a delivered receipt on the topic."""
    deadline = time.monotonic() + timeout_s
    while True:
        docs = await receipts_on_topic(s)
        outcomes = {
            o: {d["notification_id"] for d in docs if d["outcome"] == o} for o in ("sent", "delivered")
        }
        if len(outcomes["sent"] & outcomes["delivered"]) >= sends:
            return
        assert time.monotonic() < deadline, f"only {len(outcomes['delivered'])} of {sends} delivered"
        await asyncio.sleep(0.5)


def assert_causal_and_once(docs: list[dict[str, str]]) -> None:
    """No receipt_id twice, and no report on a send before the receipt of that send."""
    twice = [rid for rid, n in Counter(d["receipt_id"] for d in docs).items() if n > 1]
    by_notification: dict[str, list[dict[str, str]]] = defaultdict(list)
    for d in docs:
        by_notification[d["notification_id"]].append(d)
    early = [
        nid
        for nid, ds in by_notification.items()
        for i, d in enumerate(ds)
        if d["outcome"] in ("delivered", "undelivered")
        and not any(e["outcome"] == "sent" and e["channel"] == d["channel"] for e in ds[:i])
    ]
    assert not twice, f"{len(twice)} receipt_ids on the topic twice"
    assert not early, (
        f"{len(early)} of {len(by_notification)} notifications have a delivery report before their sent receipt"
    )


async def test_every_sent_receipt_reaches_the_topic_before_the_delivery_report_on_it(
    settings: Settings,
) -> None:
    orders = [f"IT-O{i:03d}" for i in range(40)]
    await produce(
        settings.kafka_bootstrap_servers,
        settings.input_topics[0],
        [event(o, "ARRIVED_HK_WAREHOUSE") for o in orders],
    )
    async with running(Service(settings)):
        await until_reported(settings, len(orders))
    docs = await receipts_on_topic(settings)
    assert_causal_and_once(docs)
    assert Counter(d["outcome"] for d in docs) == {"sent": 40, "delivered": 40}


async def test_the_relay_with_a_tiny_age_threshold_never_races_a_long_rate_limited_batch(
    settings: Settings,
) -> None:
    # One partition, so one long batch: 20 SMS at 10 segments/s take a few seconds, while the
    # relay looks for receipts every 50 ms (before: those older than 50 ms, the batch's own).
    s = settings.model_copy(
        update={"twilio_rate_per_s": 10.0, "twilio_burst": 1.0, "outbox_relay_interval_s": 0.05}
    )
    orders = [f"IT-R{i:03d}" for i in range(20)]
    await produce(
        s.kafka_bootstrap_servers,
        s.input_topics[0],
        [(b"one", event(o, "ARRIVED_HK_WAREHOUSE")[1]) for o in orders],
    )
    async with running(Service(s)):
        await until_reported(s, len(orders))
    docs = await receipts_on_topic(s)
    assert_causal_and_once(docs)
    assert Counter(d["outcome"] for d in docs) == {"sent": 20, "delivered": 20}


async def test_two_instances_whose_reports_arrive_at_each_other_publish_each_receipt_once_in_order(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    # The providers call every report back to the second instance, which thus applies the reports
    # on the first one's sends too; both relays run every 50 ms on the same outbox while their
    # batches are rate limited.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    common = {
        "twilio_rate_per_s": 10.0,
        "twilio_burst": 1.0,
        "outbox_relay_interval_s": 0.05,
        "callback_base_url": url,
    }
    a = settings.model_copy(update=common)
    b = settings.model_copy(update={**common, "http_port": port, "public_base_url": url})
    one, two = Service(a), Service(b)
    async with running(one), running(two):
        await wait_until(
            lambda: bool(one.assignment()) and bool(two.assignment()), 60, "both instances assigned"
        )
        orders = [f"IT-T{i:03d}" for i in range(24)]
        await produce(
            a.kafka_bootstrap_servers, a.input_topics[0], [event(o, "ARRIVED_HK_WAREHOUSE") for o in orders]
        )
        await until_reported(a, len(orders))
    state, _ = sandbox
    assert len(state.listed("twilio")) == len(orders)
    docs = await receipts_on_topic(a)
    assert_causal_and_once(docs)
    assert Counter(d["outcome"] for d in docs) == {"sent": 24, "delivered": 24}


async def test_two_stores_and_two_producers_racing_on_the_same_rows_publish_each_once_in_order(
    settings: Settings, database_url: str
) -> None:
    stores = [await PostgresStore.connect(database_url) for _ in range(2)]
    producers = [build_producer(settings.kafka_bootstrap_servers) for _ in range(2)]
    for p in producers:
        await p.start()
    try:
        boxes = [
            Outbox(store, ReceiptPublisher(p, settings.receipts_topic), name=f"instance-{i}")
            for i, (store, p) in enumerate(zip(stores, producers, strict=True))
        ]
        orders = [f"IT-X{i:03d}" for i in range(60)]
        await _claimed(stores[0], *orders)
        dead = Outbox(stores[0], ReceiptPublisher(producers[0], settings.receipts_topic), name="dead").lease()
        written: dict[str, list[str]] = {}
        for order in orders:  # recorded by an instance that died before publishing
            o, row = _sent(order)
            await stores[0].finish([o], [_json(row, "sent")], lease=dead)
            written[str(o.notification_id)] = [str(row.receipt_id)]
        async with stores[0].pool.acquire() as conn:
            await conn.execute("UPDATE receipt_outbox SET lease_until = now() - interval '1 second'")

        async def reports(box: Outbox, mine: list[str]) -> None:  # reports reach both instances meanwhile
            for order in mine:
                row = _json(_delivered(order), "delivered")
                o, _ = _sent(order)
                assert await box.record_delivery(o.notification_id, f"r-{order}", "delivered", None, row)
                written[str(o.notification_id)].append(str(row.receipt_id))

        await asyncio.gather(
            *(box.relay(limit=7) for box in boxes for _ in range(3)),
            reports(boxes[0], orders[0::2]),
            reports(boxes[1], orders[1::2]),
        )
        await boxes[1].relay()
        assert await stores[1].unpublished_receipts() == []
    finally:
        for p in producers:
            await p.stop()
        for store in stores:
            await store.close()
    docs = await receipts_on_topic(settings)
    assert_causal_and_once(docs)
    for nid, expected in written.items():
        assert [d["receipt_id"] for d in docs if d["notification_id"] == nid] == expected


def _json(row: OutboxRow, outcome: str) -> OutboxRow:
    """A row whose payload names it (what the topic's reader needs here)."""
    doc = {
        "receipt_id": str(row.receipt_id),
        "notification_id": str(row.notification_id),
        "outcome": outcome,
        "channel": "sms",
    }
    return OutboxRow(row.receipt_id, row.notification_id, row.order_id, json.dumps(doc).encode())


class TestOutboxRulesOnPostgres(OutboxRules):
    """The rules of ``tests/contracts/outbox.py`` on PostgreSQL, two pools standing for two instances."""

    @pytest.fixture
    async def store(self, database_url: str) -> AsyncIterator[NotificationStore]:  # type: ignore[override]
        store = await PostgresStore.connect(database_url)
        yield store
        await store.close()

    @pytest.fixture
    async def other_store(
        self, database_url: str, store: NotificationStore
    ) -> AsyncIterator[NotificationStore]:  # type: ignore[override]
        other = await PostgresStore.connect(database_url)
        yield other
        await other.close()

    async def expire_leases(self, store: NotificationStore) -> None:
        assert isinstance(store, PostgresStore)
        async with store.pool.acquire() as conn:
            await conn.execute("UPDATE receipt_outbox SET lease_until = now() - interval '1 second'")
