"""The sinks' contracts (``tests.contracts.sinks``) on the fakes the unit suite uses."""

from __future__ import annotations

import pytest

from service.domain.ports import DeadLetterSink, ReceiptSink
from service.testing import FakeDeadLetterSink, FakeReceiptSink
from tests.contracts.sinks import DeadLetterSinkContract, ReceiptSinkContract, SeenLetter, SeenReceipt


class TestReceiptSinkContractOnTheFake(ReceiptSinkContract):
    @pytest.fixture
    def subject(self) -> ReceiptSink:
        return FakeReceiptSink()

    async def published(self, sink: ReceiptSink) -> list[SeenReceipt]:
        assert isinstance(sink, FakeReceiptSink)
        return [(r.receipt_id, r.order_id, r.payload) for r in sink.published]

    async def break_broker(self, sink: ReceiptSink) -> None:
        assert isinstance(sink, FakeReceiptSink)
        sink.fail = True


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

    async def break_broker(self, sink: DeadLetterSink) -> None:
        assert isinstance(sink, FakeDeadLetterSink)
        sink.fail = True
