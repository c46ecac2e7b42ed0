"""The sinks' contracts (``tests.contracts.sinks``) on the Kafka publishers and a real broker, and
the wire format a topic's reader relies on: keys and headers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from service.domain.outcome import OutboxRow
from service.domain.ports import DeadLetterSink, ReceiptSink
from service.kafka.admin import ensure_topics
from service.kafka.producer import DeadLetterPublisher, PublishFailed, ReceiptPublisher, build_producer
from tests.contracts.sinks import (
    DeadLetterSinkContract,
    ReceiptSinkContract,
    SeenLetter,
    SeenReceipt,
    letter,
    receipt,
)
from tests.integration.helpers import read_topic

pytestmark = pytest.mark.integration


@dataclass
class OnKafka:
    """A publisher on a fresh topic, with what it takes to read the topic back or break it."""

    bootstrap: str
    topic: str
    producer: object

    async def records(self) -> list:  # type: ignore[type-arg]
        records = await read_topic(self.bootstrap, self.topic, at_least=0, timeout_s=3)
        return sorted(records, key=lambda r: (r.partition, r.offset))


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[OnKafka]:
    topic = f"it.{uuid.uuid4().hex[:8]}.contract"
    await ensure_topics(kafka_bootstrap, {topic: 3})
    producer = build_producer(kafka_bootstrap)
    await producer.start()
    yield OnKafka(kafka_bootstrap, topic, producer)
    await producer.stop()


class TestReceiptSinkContractOnKafka(ReceiptSinkContract):
    @pytest.fixture
    def subject(self, kafka: OnKafka) -> ReceiptSink:  # type: ignore[override]
        self.kafka = kafka
        return ReceiptPublisher(kafka.producer, kafka.topic)  # type: ignore[arg-type]

    async def published(self, sink: ReceiptSink) -> list[SeenReceipt]:
        return [
            (uuid.UUID(dict(r.headers)["receipt_id"].decode()), r.key.decode(), r.value)
            for r in await self.kafka.records()
        ]

    async def test_a_receipt_the_producer_refuses_raises_publish_failed(self, subject: ReceiptSink) -> None:
        # (publishing after the producer stopped does not fail: aiokafka waits for metadata for ever)
        with pytest.raises(PublishFailed):
            await subject.publish([OutboxRow(uuid.uuid4(), uuid.uuid4(), "A", os.urandom(2 * 1024 * 1024))])

    async def test_a_receipt_is_keyed_by_its_order_with_its_id_in_a_header(
        self, subject: ReceiptSink
    ) -> None:
        row = receipt("ORD-7", 1)
        await subject.publish([row])
        [record] = await self.kafka.records()
        assert (record.key, record.value) == (b"ORD-7", row.payload)
        assert record.headers == (("receipt_id", str(row.receipt_id).encode()),)


class TestDeadLetterSinkContractOnKafka(DeadLetterSinkContract):
    @pytest.fixture
    def subject(self, kafka: OnKafka) -> DeadLetterSink:  # type: ignore[override]
        self.kafka = kafka
        return DeadLetterPublisher(kafka.producer, kafka.topic)  # type: ignore[arg-type]

    async def published(self, sink: DeadLetterSink) -> list[SeenLetter]:
        seen: list[SeenLetter] = []
        for r in await self.kafka.records():
            h = {k: v.decode() for k, v in r.headers}
            source = (h["dlq.source_topic"], int(h["dlq.source_partition"]), int(h["dlq.source_offset"]))
            seen.append((*source, h["dlq.reason"], r.value))
        return seen

    async def test_a_letter_is_keyed_by_its_source_coordinates_with_its_origin_in_headers(
        self, subject: DeadLetterSink
    ) -> None:
        await subject.publish([letter(10, b"{not json", key=b"ORD-9"), letter(11, b"{}", key=None)])
        first, second = sorted(
            await self.kafka.records(), key=lambda r: int(dict(r.headers)["dlq.source_offset"])
        )
        assert first.key == b"shipment.status.v1:3:10"
        assert first.value == b"{not json"
        h = dict(first.headers)
        assert {k: h[k] for k in h if k != "dlq.dead_lettered_at"} == {
            "dlq.id": b"shipment.status.v1:3:10",
            "dlq.reason": b"malformed_json",
            "dlq.detail": b"json",
            "dlq.error_class": b"EventRejected",
            "dlq.source_topic": b"shipment.status.v1",
            "dlq.source_partition": b"3",
            "dlq.source_offset": b"10",
            "dlq.attempts": b"1",
            "dlq.source_key": b"ORD-9",
        }
        assert h["dlq.dead_lettered_at"]
        assert second.key == b"shipment.status.v1:3:11"
        assert "dlq.source_key" not in dict(second.headers)  # the source record had no key
