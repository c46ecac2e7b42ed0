"""The consumer: a group member with manual commits of explicit offsets only."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from service.domain.model import InboundRecord


def build_consumer(
    bootstrap_servers: str,
    group_id: str,
    *,
    topics: Sequence[str] = (),
    pattern: str | None = None,
    max_records: int = 500,
    listener: ConsumerRebalanceListener | None = None,
) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=f"{group_id}-consumer",
        enable_auto_commit=False,  # we commit explicit offsets after the batch is durable
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
        rebalance_timeout_ms=30_000,
        max_poll_interval_ms=300_000,
    )
    if pattern:
        consumer.subscribe(pattern=pattern, listener=listener)
    else:
        consumer.subscribe(topics=list(topics), listener=listener)
    return consumer


class ShareOnAssignment(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """After each rebalance, tells ``on_share`` this member's fraction of the subscribed partitions.

    Provider rate limits are group-wide; each member takes this fraction of them, so the group
    as a whole stays under the limit (see ``service.domain.ratelimit``).
    """

    def __init__(self, on_share: Callable[[float], None]) -> None:
        self._on_share = on_share
        self.consumer: AIOKafkaConsumer | None = None

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        if self.consumer is None:
            return
        total = sum(len(self.consumer.partitions_for_topic(t) or ()) for t in self.consumer.subscription())
        self._on_share(len(assigned) / total if total else 1.0)


def to_records(batch: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> list[InboundRecord]:
    """Flatten a ``getmany`` batch, each partition in offset order."""
    out: list[InboundRecord] = []
    for tp, msgs in batch.items():
        out.extend(
            InboundRecord(
                topic=tp.topic,
                partition=tp.partition,
                offset=m.offset,
                key=m.key,
                value=m.value,
                timestamp_ms=m.timestamp,
            )
            for m in msgs
        )
    return out


def next_offsets(
    batch: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
) -> dict[TopicPartition, int]:
    """The offsets to commit once the whole batch is durable: one past the last record of each partition."""
    return {tp: msgs[-1].offset + 1 for tp, msgs in batch.items() if msgs}


async def read_all(bootstrap_servers: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on a topic right now, from its first offset to the end (no consumer group)."""
    from service.kafka.admin import partitions_of  # noqa: PLC0415  # admin imports settings

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions_of(bootstrap_servers, [topic])
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp, start in (await consumer.beginning_offsets(parts)).items():
            consumer.seek(tp, start)
        records: list[ConsumerRecord[bytes, bytes]] = []

        async def behind() -> bool:
            for tp, end in ends.items():
                if await consumer.position(tp) < end:
                    return True
            return False

        while await behind():
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(msgs)
        return records
    finally:
        await consumer.stop()
