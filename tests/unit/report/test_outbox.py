"""The receipt outbox: causal order per notification, each receipt once, leases against the relay.

``OutboxRules`` (``tests/contracts/outbox.py``) states the store's rules; it runs here on the fake
and, in ``tests/integration/test_outbox_on_real_stack.py``, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from service.domain.outcome import Lease, OutboxRow
from service.domain.ports import NotificationStore, SendAccepted
from service.report.delivery_reports import DeliveryReports
from service.report.outbox import Outbox
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
