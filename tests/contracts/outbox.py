"""The receipt outbox's ordering and lease rules across instances (``OutboxRules``), for any
``NotificationStore``: causal order per notification, each receipt once, leases against the relay.
Run on ``FakeStore`` (tests/unit/report/test_outbox.py) and on ``PostgresStore``
(tests/integration/test_outbox_on_real_stack.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest, OutboxRow, Outcome
from service.domain.ports import NotificationStore
from service.report.outbox import Outbox
from tests.builders import update

M = Milestone.ARRIVED_HK_WAREHOUSE


@dataclass
class RecordingSink:
    """A receipt sink that remembers what it published, in order; it can fail, or run ``during``
    (once) while a publish is on its way, to let another party act at that moment."""

    published: list[OutboxRow] = field(default_factory=list)
    fail: bool = False
    during: Callable[[Sequence[OutboxRow]], Awaitable[None]] | None = None

    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        await asyncio.sleep(0)  # let racing publishers interleave
        if self.during is not None:
            during, self.during = self.during, None
            await during(receipts)
        if self.fail:
            raise ConnectionError("broker down")
        self.published.extend(receipts)

    def ids(self) -> list[uuid.UUID]:
        return [r.receipt_id for r in self.published]


def _sent(order: str) -> tuple[Outcome, OutboxRow]:
    nid = notification_id(order, M)
    o = Outcome(nid, update(order), M, "sent", "sms", datetime.now(UTC), provider="p", reference=f"r-{order}")
    return o, OutboxRow(uuid.uuid4(), nid, order, b"sent")


def _delivered(order: str) -> OutboxRow:
    return OutboxRow(uuid.uuid4(), notification_id(order, M), order, b"delivered")


async def _claimed(store: NotificationStore, *orders: str) -> None:
    await store.claim([ClaimRequest(notification_id(o, M), update(o), M, "claimed") for o in orders])


def assert_once_in_order(published: Sequence[OutboxRow], written: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """Every receipt written is published exactly once, each notification's in the order written."""
    ids = [r.receipt_id for r in published]
    assert len(ids) == len(set(ids)), "a receipt was published twice"
    for nid, expected in written.items():
        assert [r.receipt_id for r in published if r.notification_id == nid] == expected, str(nid)


class OutboxRules:
    """The ordering and lease rules, for any store (subclasses provide the stores and the clock)."""

    @pytest.fixture
    def store(self) -> NotificationStore:
        raise NotImplementedError

    @pytest.fixture
    def other_store(self, store: NotificationStore) -> NotificationStore:
        """A second store on the same data: another instance."""
        raise NotImplementedError

    async def expire_leases(self, store: NotificationStore) -> None:
        """Let every lease run out (time passes)."""
        raise NotImplementedError

    async def test_a_receipt_is_born_leased_to_its_writer_and_the_relay_leaves_it_alone(
        self, store: NotificationStore
    ) -> None:
        sink = RecordingSink()
        writer, relay = Outbox(store, sink, name="a"), Outbox(store, sink, name="relay")
        await _claimed(store, "A")
        lease = writer.lease()
        o, row = _sent("A")
        await store.finish([o], [row], lease=lease)  # recorded; its writer has not published it yet
        assert await relay.relay() == 0  # the relay cannot race the writer
        assert await writer.publish(lease, [o.notification_id]) == 1
        assert await relay.relay() == 0
        assert sink.ids() == [row.receipt_id]

    async def test_the_relay_publishes_a_receipt_whose_writer_died_once_its_lease_runs_out(
        self, store: NotificationStore
    ) -> None:
        sink = RecordingSink()
        relay = Outbox(store, sink, name="relay")
        await _claimed(store, "A")
        o, row = _sent("A")
        await store.finish([o], [row], lease=Outbox(store, sink, name="dead").lease())
        assert await relay.relay() == 0
        await self.expire_leases(store)
        assert await relay.relay() == 1
        assert await relay.relay() == 0
        assert sink.ids() == [row.receipt_id]

    async def test_a_report_recorded_while_its_send_is_being_published_goes_out_right_after_it(
        self, store: NotificationStore, other_store: NotificationStore
    ) -> None:
        sink = RecordingSink()
        sender, reports = Outbox(store, sink, name="a"), Outbox(other_store, sink, name="b")
        await _claimed(store, "A")
        o, sent = _sent("A")
        delivered = _delivered("A")

        async def report_meanwhile(rows: Sequence[OutboxRow]) -> None:
            assert [r.receipt_id for r in rows] == [sent.receipt_id]
            assert await reports.record_delivery(o.notification_id, "r-A", "delivered", None, delivered)
            assert sink.published == []  # it waits for the sent receipt on its way

        sink.during = report_meanwhile
        await sender.record([o], [sent])
        assert sink.ids() == [sent.receipt_id, delivered.receipt_id]

    async def test_a_report_recorded_before_its_send_is_published_waits_for_it(
        self, store: NotificationStore, other_store: NotificationStore
    ) -> None:
        sink = RecordingSink()
        sender, reports = Outbox(store, sink, name="a"), Outbox(other_store, sink, name="b")
        await _claimed(store, "A", "B")
        lease = sender.lease()
        o, sent = _sent("A")
        await store.finish([o], [sent], lease=lease)
        delivered = _delivered("A")
        assert await reports.record_delivery(o.notification_id, "r-A", "delivered", None, delivered)
        assert sink.published == []  # head of line: the sent receipt is not out yet
        other, other_row = _sent("B")
        await reports.record([other], [other_row])  # another notification is not held back
        assert sink.ids() == [other_row.receipt_id]
        assert await sender.publish(lease, [o.notification_id]) == 2
        assert sink.ids() == [other_row.receipt_id, sent.receipt_id, delivered.receipt_id]

    async def test_a_failed_publish_leaves_the_receipts_to_the_relay_in_their_order(
        self, store: NotificationStore, other_store: NotificationStore
    ) -> None:
        sink = RecordingSink(fail=True)
        sender, reports = Outbox(store, sink, name="a"), Outbox(other_store, sink, name="b")
        await _claimed(store, "A")
        o, sent = _sent("A")
        await sender.record([o], [sent])
        delivered = _delivered("A")
        assert await reports.record_delivery(o.notification_id, "r-A", "delivered", None, delivered)
        assert sink.published == []
        sink.fail = False
        assert await Outbox(store, sink, name="relay").relay() == 2  # given back: no need to wait
        assert sink.ids() == [sent.receipt_id, delivered.receipt_id]

    async def test_two_instances_racing_on_the_same_rows_publish_each_receipt_once_in_order(
        self, store: NotificationStore, other_store: NotificationStore
    ) -> None:
        orders = [f"R{i:02d}" for i in range(24)]
        await _claimed(store, *orders)
        dead = Outbox(store, RecordingSink(), name="dead").lease()
        written: dict[uuid.UUID, list[uuid.UUID]] = {}
        sents = {}
        for order in orders:  # recorded by an instance that died before publishing
            o, row = _sent(order)
            await store.finish([o], [row], lease=dead)
            written[o.notification_id] = [row.receipt_id]
            sents[order] = o
        await self.expire_leases(store)
        sink = RecordingSink()
        one, two = Outbox(store, sink, name="one"), Outbox(other_store, sink, name="two")

        async def reports() -> None:  # delivery reports arrive meanwhile, at either instance
            for i, order in enumerate(orders):
                row = _delivered(order)
                box = one if i % 2 else two
                assert await box.record_delivery(
                    sents[order].notification_id, f"r-{order}", "delivered", None, row
                )
                written[sents[order].notification_id].append(row.receipt_id)

        await asyncio.gather(
            one.relay(limit=5), two.relay(limit=5), reports(), one.relay(limit=3), two.relay(limit=7)
        )
        await one.relay()  # nothing may be left behind but what is still leased to a live writer
        assert_once_in_order(sink.published, written)
        assert await store.unpublished_receipts() == []
