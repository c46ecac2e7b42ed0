"""The consumer's contract (``tests.contracts.consumer``) on ``KafkaConsumer`` and a real broker:
what ``FakeConsumer`` is proven against. Each test has its own topic and group."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from aiokafka import AIOKafkaProducer

from service.domain.ports import Consumer
from service.kafka.admin import ensure_topics
from service.kafka.consumer import KafkaConsumer, build_consumer
from tests.contracts.consumer import ConsumerContract, Group

pytestmark = pytest.mark.integration


class OnKafka:
    """A group of ``KafkaConsumer`` members on a fresh two-partition topic."""

    def __init__(self, bootstrap: str, producer: AIOKafkaProducer) -> None:
        run = uuid.uuid4().hex[:8]
        self.bootstrap, self.producer = bootstrap, producer
        self.topic, self.group_id = f"it.{run}.consumer", f"it-{run}-consumer"
        self.members: list[KafkaConsumer] = []

    async def produce(self, partition: int, values: Sequence[bytes], key: bytes | None = None) -> None:
        for value in values:
            await self.producer.send_and_wait(self.topic, value, key=key, partition=partition)

    async def join(
        self,
        *,
        on_revoke: Callable[[], Awaitable[None]] | None = None,
        on_share: Callable[[float], None] | None = None,
    ) -> Consumer:
        member = build_consumer(
            self.bootstrap, self.group_id, topics=[self.topic], on_revoke=on_revoke, on_share=on_share
        )
        await member.start()
        self.members.append(member)
        return member

    async def leave(self, member: Consumer) -> None:
        assert isinstance(member, KafkaConsumer)
        await member.stop()


@pytest.fixture
async def on_kafka(kafka_bootstrap: str) -> AsyncIterator[OnKafka]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    group = OnKafka(kafka_bootstrap, producer)
    await ensure_topics(kafka_bootstrap, {group.topic: 2})
    yield group
    for member in group.members:
        await member.stop()
    await producer.stop()


class TestConsumerContractOnKafka(ConsumerContract):
    @pytest.fixture
    def group(self, on_kafka: OnKafka) -> Group:
        return on_kafka
