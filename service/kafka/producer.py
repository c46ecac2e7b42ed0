"""Publishing to Kafka: receipts and dead letters, both awaited until the broker acknowledges them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.domain.errors import NotifierError
from service.domain.outcome import OutboxRow
from service.domain.ports import DeadLetter


class PublishFailed(NotifierError):
    """The broker did not acknowledge a message; the caller must not commit the input offsets."""

    retriable = True


def build_producer(bootstrap_servers: str, client_id: str = "milestone-notifier") -> AIOKafkaProducer:
    # Idempotent, acks=all, a short linger so a batch's receipts travel together.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        compression_type="gzip",
        request_timeout_ms=30_000,
    )


async def _send_all(
    producer: AIOKafkaProducer, sends: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]
) -> None:
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for topic, key, value, headers in sends
        ]
        await asyncio.gather(*futures)
    except KafkaError as exc:
        raise PublishFailed(f"kafka: {type(exc).__name__}") from exc


class ReceiptPublisher:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        await _send_all(
            self._producer,
            [
                (self._topic, r.order_id.encode(), r.payload, [("receipt_id", str(r.receipt_id).encode())])
                for r in receipts
            ],
        )


class DeadLetterPublisher:
    """Copies an unprocessable message to the dead-letter topic with its origin and reason in headers.

    The value is copied unchanged (it may hold personal data: the DLQ topic has its own short
    retention and restricted ACLs in production); the headers carry no personal data.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        now = datetime.now(UTC).isoformat()
        await _send_all(
            self._producer,
            [
                (
                    self._topic,
                    d.record.key,
                    d.record.value,
                    [
                        ("dlq.reason", d.reason.encode()),
                        ("dlq.detail", d.detail.encode()[:1000]),
                        ("dlq.error_class", d.error_class.encode()),
                        ("dlq.source_topic", d.record.topic.encode()),
                        ("dlq.source_partition", str(d.record.partition).encode()),
                        ("dlq.source_offset", str(d.record.offset).encode()),
                        ("dlq.attempts", str(d.attempts).encode()),
                        ("dlq.dead_lettered_at", now.encode()),
                    ],
                )
                for d in letters
            ],
        )
