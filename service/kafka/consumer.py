"""The consumer: a group member with manual commits of explicit offsets only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from service.domain.model import InboundRecord

#: What one fetch may bring, compressed (aiokafka's defaults are 1 MiB and 50 MiB). The broker still
#: returns a first batch larger than these, so they never stop progress; they bound memory per
#: fetch. One record's *uncompressed* size has no client-side bound: the broker's (or topic's)
#: ``max.message.bytes`` bounds it compressed, and a record too large to copy is dead-lettered as a
#: bounded copy (service/kafka/producer.py).
MAX_PARTITION_FETCH_BYTES = 1 << 20
FETCH_MAX_BYTES = 8 << 20


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
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
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
    """Before a rebalance, lets ``on_revoke`` drain the work in flight (and commit what finished);
    after it, tells ``on_share`` this member's fraction of the subscribed partitions.

    Provider rate limits are group-wide; each member takes this fraction of them, so the group
    as a whole stays under the limit (see ``service.domain.ratelimit``).
    """

    def __init__(
        self, on_share: Callable[[float], None], on_revoke: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._on_share = on_share
        self.on_revoke = on_revoke  # drains the batch in flight before the partitions move
        self.consumer: AIOKafkaConsumer | None = None

    async def on_partitions_revoked(self, revoked: object) -> None:
        if self.on_revoke is not None:
            await self.on_revoke()

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
    unfinished: Mapping[tuple[str, int], int] | None = None,
) -> dict[TopicPartition, int]:
    """The offsets to commit once the batch is durable: per partition, its first unfinished record,
    or one past its last record when all of it finished."""
    unfinished = unfinished or {}
    out: dict[TopicPartition, int] = {}
    for tp, msgs in batch.items():
        if msgs:
            out[tp] = min(unfinished.get((tp.topic, tp.partition), msgs[-1].offset + 1), msgs[-1].offset + 1)
    return out


def consumer_lag(consumer: AIOKafkaConsumer, positions: Mapping[TopicPartition, int]) -> int:
    """Records waiting on the assigned partitions, by the high watermarks the last fetches saw."""
    lag = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            lag += max(0, high - positions.get(tp, high))
    return lag


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
