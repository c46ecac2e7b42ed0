"""The ``ReceiptSink`` and ``DeadLetterSink`` ports' contracts: what a reader of the topic finds
once ``publish`` returned. (What a publish the broker does not acknowledge raises, ``PublishFailed``,
is shown for the publishers in tests/unit/kafka/test_producer.py and
tests/integration/test_sink_contracts.py, for the fakes in tests/unit/test_sink_contracts.py.) Run on
``FakeReceiptSink``/``FakeDeadLetterSink`` (tests/unit/test_sink_contracts.py) and on the Kafka
publishers (tests/integration/test_sink_contracts.py, which also checks their keys and headers).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from service.domain.model import InboundRecord
from service.domain.outcome import OutboxRow
from service.domain.ports import DeadLetter, DeadLetterSink, ReceiptSink

#: A receipt as its reader sees it: (receipt id, order id, payload).
SeenReceipt = tuple[uuid.UUID, str, bytes]
#: A dead letter as its reader sees it: (source topic, partition, offset, reason, value).
SeenLetter = tuple[str, int, int, str, bytes | None]


def receipt(order: str, n: int) -> OutboxRow:
    return OutboxRow(uuid.uuid4(), uuid.uuid4(), order, f'{{"order_id": "{order}", "n": {n}}}'.encode())


def letter(
    offset: int, value: bytes | None, key: bytes | None = b"ORD-1", reason: str = "malformed_json"
) -> DeadLetter:
    return DeadLetter(
        InboundRecord("shipment.status.v1", 3, offset, key, value, 0), reason, "json", "EventRejected"
    )


class ReceiptSinkContract:
    """Subclasses give ``subject`` and ``published`` (what a reader finds, each order's in its
    order)."""

    @pytest.fixture
    def subject(self) -> ReceiptSink:
        raise NotImplementedError

    async def published(self, sink: ReceiptSink) -> list[SeenReceipt]:
        raise NotImplementedError

    async def test_every_receipt_is_published_once_each_order_s_in_the_order_given(
        self, subject: ReceiptSink
    ) -> None:
        rows = [receipt("A", 1), receipt("B", 1), receipt("A", 2), receipt("A", 3)]
        await subject.publish(rows[:2])
        await subject.publish(rows[2:])
        await subject.publish([])
        seen = await self.published(subject)
        assert sorted(seen) == sorted((r.receipt_id, r.order_id, r.payload) for r in rows)
        assert [s for s in seen if s[1] == "A"] == [
            (r.receipt_id, "A", r.payload) for r in rows if r.order_id == "A"
        ]


class DeadLetterSinkContract:
    """Hooks as for ``ReceiptSinkContract``."""

    @pytest.fixture
    def subject(self) -> DeadLetterSink:
        raise NotImplementedError

    async def published(self, sink: DeadLetterSink) -> list[SeenLetter]:
        raise NotImplementedError

    async def test_every_letter_is_copied_with_its_value_source_and_reason(
        self, subject: DeadLetterSink
    ) -> None:
        letters: Sequence[DeadLetter] = [
            letter(10, b"{not json"),
            letter(11, '{"name": "陳"}'.encode(), key=None, reason="invalid_event"),
            letter(12, None),  # a tombstone
        ]
        await subject.publish(letters)
        await subject.publish([])
        seen = await self.published(subject)
        assert sorted(seen, key=lambda s: s[2]) == [
            ("shipment.status.v1", 3, 10, "malformed_json", b"{not json"),
            ("shipment.status.v1", 3, 11, "invalid_event", '{"name": "陳"}'.encode()),
            ("shipment.status.v1", 3, 12, "malformed_json", None),
        ]
