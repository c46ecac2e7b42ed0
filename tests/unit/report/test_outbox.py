"""The receipt outbox: causal order per notification, each receipt once, leases against the relay.

``OutboxRules`` (``tests/contracts/outbox.py``) states the store's rules; it runs here on the fake
and, in ``tests/integration/test_outbox_on_real_stack.py``, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from service.domain.errors import StoreUnavailable
from service.domain.outcome import Lease, OutboxRow
from service.domain.ports import NotificationStore, SendAccepted
from service.kafka.producer import PublishFailed
from service.report.delivery_reports import DeliveryReports
from service.report.outbox import Outbox
from service.report.receipts import receipt_row
from service.testing import FakeSmsSender, FakeStore
from tests.builders import event
from tests.contracts.outbox import OutboxRules, RecordingSink
from tests.unit.pipeline.test_driver import Harness


class TestOutboxRulesOnTheFake(OutboxRules):
    @pytest.fixture
    def store(self) -> NotificationStore:
        return FakeStore()

    @pytest.fixture
    def other_store(self, store: NotificationStore) -> NotificationStore:
        return store  # the fake is one shared database

    async def expire_leases(self, store: NotificationStore) -> None:
        assert isinstance(store, FakeStore)
        store.now += timedelta(hours=2)


# --- the pipeline and the delivery reports use the outbox ---------------------------------------


@dataclass
class Gate:
    """Holds every SMS after the first until ``opened`` is set: a batch stays in flight."""

    sender: FakeSmsSender
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    @property
    def references(self) -> list[str]:
        return self.sender.references


async def until(check: Callable[[], bool]) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def decoded(h: Harness) -> list[dict[str, str]]:
    return [json.loads(r.payload) for r in h.receipts.published]


def gated(h: Harness) -> Gate:
    gate = Gate(h.sender)
    send = h.sender.send_sms

    async def held_send(to_e164: str, body: str, *, reference: str) -> SendAccepted:
        gate.calls += 1
        if gate.calls > 1:
            await gate.opened.wait()
        return await send(to_e164, body, reference=reference)

    h.sender.send_sms = held_send  # type: ignore[method-assign]
    return gate


async def test_a_sent_receipt_goes_out_as_soon_as_its_send_is_recorded_and_before_its_delivery() -> None:
    h = Harness()
    sender = gated(h)
    reports = DeliveryReports(
        store=h.store,
        receipts=h.stages.receipts,
        sender=h.stages.sender,
        keyring=None,
        metrics=h.metrics,
        references=h.references,
    )
    batch = asyncio.create_task(
        h.feed(event("A", "ARRIVED_HK_WAREHOUSE"), event("B", "ARRIVED_HK_WAREHOUSE"))
    )
    await until(lambda: len(h.receipts.published) == 1)  # A is sent; B still waits: the batch runs on
    assert await reports.report("sms-a", sender.references[0], delivered=True) == "delivered"
    assert [(d["order_id"], d["outcome"]) for d in decoded(h)] == [("A", "sent"), ("A", "delivered")]
    sender.opened.set()
    await batch
    assert await reports.report("sms-a", sender.references[1], delivered=True) == "delivered"
    assert [(d["order_id"], d["outcome"]) for d in decoded(h)][2:] == [("B", "sent"), ("B", "delivered")]


async def test_the_relay_running_while_a_batch_and_its_publishes_are_in_flight_publishes_nothing_twice() -> (
    None
):
    h = Harness()
    sender = gated(h)
    open_sink = asyncio.Event()
    inside = asyncio.Event()
    publish = h.receipts.publish

    async def slow_publish(receipts: Sequence[OutboxRow]) -> None:
        inside.set()
        await open_sink.wait()  # a publish on its way (a slow broker)
        await publish(receipts)

    h.receipts.publish = slow_publish  # type: ignore[method-assign]
    other = Outbox(h.store, h.receipts, name="other-instance")
    batch = asyncio.create_task(
        h.feed(*(event(o, "ARRIVED_HK_WAREHOUSE") for o in ("A", "B", "C")), event("A", "CUSTOMS_CLEARED"))
    )
    await inside.wait()
    relays = [
        asyncio.create_task(box.relay())
        for box in (h.stages.receipts.outbox, other, h.stages.receipts.outbox)
    ]
    await asyncio.sleep(0)
    open_sink.set()
    sender.opened.set()
    await batch
    await asyncio.gather(*relays)
    assert await h.stages.receipts.outbox.relay() == 0
    ids = [d["receipt_id"] for d in decoded(h)]
    assert len(ids) == 4
    assert len(set(ids)) == len(ids)


def test_leases_are_never_shared_between_operations() -> None:
    box = Outbox(FakeStore(), RecordingSink(), lease_s=5)
    a, b = box.lease(), box.lease()
    assert a.owner != b.owner
    assert a == Lease(a.owner, 5)


# --- the outbox's own bookkeeping: leases, what it logs, the relay's rounds ------------------------


class Spy:
    """Records the lease (and limit) each store call of the outbox is given."""

    def __init__(self, store: FakeStore) -> None:
        self.calls: list[tuple[str, object, object]] = []
        finish, take, deliver = store.finish, store.take_receipts, store.record_delivery

        async def spied_finish(*args: object, lease: Lease | None = None, **kw: object) -> None:
            self.calls.append(("finish", lease, None))
            await finish(*args, lease=lease, **kw)  # type: ignore[arg-type]

        async def spied_take(lease: Lease, notifications: object = None, limit: int = 200) -> list[OutboxRow]:
            self.calls.append(("take", lease, limit))
            return await take(lease, notifications, limit)  # type: ignore[arg-type]

        async def spied_deliver(*args: object, lease: Lease | None = None, **kw: object) -> bool:
            self.calls.append(("record_delivery", lease, args[3]))  # the reason
            return await deliver(*args, lease=lease, **kw)  # type: ignore[arg-type]

        store.finish = spied_finish  # type: ignore[method-assign]
        store.take_receipts = spied_take  # type: ignore[method-assign,assignment]
        store.record_delivery = spied_deliver  # type: ignore[method-assign]


def test_a_lease_is_named_after_this_process_and_lasts_a_minute_by_default() -> None:
    lease = Outbox(FakeStore(), RecordingSink()).lease()
    prefix = f"{socket.gethostname()}:{os.getpid()}:"
    assert lease.owner.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{12}", lease.owner.removeprefix(prefix))
    assert lease.seconds == 60.0
    assert Outbox(FakeStore(), RecordingSink(), name="me").lease().owner.startswith("me:")


async def test_an_outcome_is_recorded_and_published_under_one_lease_of_the_receipts_default() -> None:
    h = Harness()
    spy = Spy(h.store)
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    (finish, lease, _), (take, taken_with, _) = spy.calls
    assert (finish, take) == ("finish", "take")
    assert isinstance(lease, Lease)
    assert taken_with is lease
    assert lease.seconds == 60.0


async def test_a_report_is_recorded_with_its_reason_and_published_under_its_lease() -> None:
    h = Harness()
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    spy = Spy(h.store)
    await h.stages.reports.report("sms-a", h.sender.references[0], delivered=False, code="30003")
    (kind, lease, reason), (take, taken_with, _) = spy.calls[:2]
    assert (kind, reason, take) == ("record_delivery", "sms-a_30003", "take")
    assert isinstance(lease, Lease)
    assert taken_with is lease


async def test_a_stale_report_is_neither_recorded_nor_published_nor_counted() -> None:
    h = Harness()
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    receipts = h.stages.receipts
    (sent,) = h.store.rows.values()
    assert sent.outcome is not None
    stale = dataclasses.replace(sent.outcome, outcome="delivered")
    row = OutboxRow(uuid.uuid4(), sent.outcome.notification_id, "A", b"{}")
    nid = sent.outcome.notification_id
    assert await receipts.outbox.record_delivery(nid, "not-the-reference", "delivered", None, row) is False
    assert await receipts.record_report(stale, "not-the-reference") is False
    assert len(h.receipts.published) == 1
    labels = {"outcome": "delivered", "channel": "sms"}
    assert not h.metrics.registry.get_sample_value("notifier_notifications_total", labels)


async def test_publishing_with_the_database_gone_is_deferred_and_logged() -> None:
    store = FakeStore()
    box = Outbox(store, RecordingSink())
    store.fail_next = StoreUnavailable("database: down")
    with capture_logs() as logs:
        assert await box.publish(box.lease(), [uuid.uuid4()]) == 0
    assert logs == [
        {"event": "receipts_publish_deferred", "log_level": "warning", "error": "StoreUnavailable"}
    ]


class Failing:
    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        raise PublishFailed("kafka: down") from TimeoutError()


async def test_the_relay_publishes_in_rounds_of_its_limit_and_logs_the_total() -> None:
    h = Harness()
    h.receipts.fail = True
    await h.feed(*(event(order, "ARRIVED_HK_WAREHOUSE") for order in "ABC"))
    h.receipts.fail = False
    h.store.now += timedelta(hours=1)  # their leases ran out
    spy = Spy(h.store)
    with capture_logs() as logs:
        assert await h.stages.receipts.outbox.relay(limit=1) == 3
    assert [limit for kind, _, limit in spy.calls if kind == "take"] == [1, 1, 1, 1]
    assert len(h.receipts.published) == 3
    assert logs == [{"event": "outbox_relayed", "log_level": "info", "count": 3}]
    with capture_logs() as logs:
        assert await h.stages.receipts.outbox.relay() == 0
    assert logs == []
    assert spy.calls[-1][2] == 200  # the relay's rounds by default


async def test_a_failed_publish_is_logged_with_its_cause_and_left_for_the_relay() -> None:
    h = Harness()
    h.receipts.fail = True
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    h.store.now += timedelta(hours=1)
    box = Outbox(h.store, Failing())
    with capture_logs() as logs:
        assert await box.relay() == 0
    assert logs == [
        {
            "event": "receipts_publish_deferred",
            "log_level": "warning",
            "count": 1,
            "error": "PublishFailed",
            "cause": "TimeoutError",
        }
    ]
    with capture_logs() as logs:
        assert await h.stages.receipts.outbox.relay() == 0  # the fake broker's failure has no cause
    assert [e["cause"] for e in logs] == [None]
    h.receipts.fail = False
    with capture_logs() as logs:
        assert await h.stages.receipts.outbox.relay() == 1  # given back, not leased: taken at once
    assert [e["event"] for e in logs] == ["outbox_relayed"]


async def test_a_receipt_written_while_its_predecessor_is_published_goes_out_in_the_same_drain() -> None:
    h = Harness()
    h.receipts.fail = True
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"))
    h.receipts.fail = False
    h.store.now += timedelta(hours=1)
    (row,) = h.store.rows.values()
    assert row.outcome is not None
    sent = row.outcome
    delivered = receipt_row(dataclasses.replace(sent, outcome="delivered"))

    async def a_report_is_recorded_by_another_operation(rows: Sequence[OutboxRow]) -> None:
        assert sent.reference is not None
        lease = Lease("other-operation", 60)  # it waits: the sent receipt before it is being published
        assert await h.store.record_delivery(
            sent.notification_id, sent.reference, "delivered", None, delivered, lease=lease
        )

    sink = RecordingSink(during=a_report_is_recorded_by_another_operation)
    assert await Outbox(h.store, sink).relay() == 2
    assert [r.receipt_id for r in sink.published][1] == delivered.receipt_id
