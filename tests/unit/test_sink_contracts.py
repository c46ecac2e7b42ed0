"""The sinks' contracts (``tests.contracts.sinks``) on the fakes the unit suite uses."""

from __future__ import annotations

import pytest

from service.domain.ports import DeadLetterSink, ReceiptSink
from service.kafka.producer import PublishFailed
from service.testing import FakeDeadLetterSink, FakeReceiptSink
from tests.contracts.sinks import (
    DeadLetterSinkContract,
    ReceiptSinkContract,
    SeenLetter,
    SeenReceipt,
    letter,
    receipt,
)


class TestReceiptSinkContractOnTheFake(ReceiptSinkContract):
    @pytest.fixture
    def subject(self) -> ReceiptSink:
        return FakeReceiptSink()

    async def published(self, sink: ReceiptSink) -> list[SeenReceipt]:
        assert isinstance(sink, FakeReceiptSink)
        return [(r.receipt_id, r.order_id, r.payload) for r in sink.published]

    async def test_a_failing_broker_raises_publish_failed_as_the_publisher_does(self) -> None:
        with pytest.raises(PublishFailed):
            await FakeReceiptSink(fail=True).publish([receipt("A", 1)])


class TestDeadLetterSinkContractOnTheFake(DeadLetterSinkContract):
    @pytest.fixture
    def subject(self) -> DeadLetterSink:
        return FakeDeadLetterSink()

    async def published(self, sink: DeadLetterSink) -> list[SeenLetter]:
        assert isinstance(sink, FakeDeadLetterSink)
        return [
            (d.record.topic, d.record.partition, d.record.offset, d.reason, d.record.value)
            for d in sink.letters
        ]

    async def test_a_failing_broker_raises_publish_failed_as_the_publisher_does(self) -> None:
        # the publisher's: tests/unit/kafka/test_producer.py::test_a_transient_error_propagates_and_sends_no_bounded_copy
        with pytest.raises(PublishFailed):
            await FakeDeadLetterSink(fail=True).publish([letter(1, b"{}")])
