"""The consumer: a group member with manual commits of explicit offsets only (the ``Consumer`` port)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from service.domain.errors import CommitRefused, ConsumerError, ConsumerUnavailable
from service.domain.model import InboundRecord, Partition
from service.domain.ports import Batch

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
    on_share: Callable[[float], None] | None = None,
    on_revoke: Callable[[], Awaitable[None]] | None = None,
) -> KafkaConsumer:
    """The group member, subscribed; ``on_share`` / ``on_revoke``: see ``ShareOnAssignment``."""
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
    listener = ShareOnAssignment(on_share or (lambda _: None), on_revoke)
    listener.consumer = consumer
    if pattern:
        consumer.subscribe(pattern=pattern, listener=listener)
    else:
        consumer.subscribe(topics=list(topics), listener=listener)
    return KafkaConsumer(consumer)


class KafkaConsumer:
    """The ``Consumer`` port over aiokafka: our partitions and records in and out, aiokafka's
    errors translated (a commit refused after a rebalance, broker trouble)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group; a broker gone by now changes nothing (logged by aiokafka)."""
        with contextlib.suppress(KafkaError):
            await self._consumer.stop()

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Batch:
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {
            (tp.topic, tp.partition): [_record(tp, m) for m in msgs] for tp, msgs in fetched.items() if msgs
        }

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        try:
            await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            raise CommitRefused(type(exc).__name__) from exc
        except KafkaError as exc:
            raise ConsumerUnavailable(type(exc).__name__) from exc

    def seek(self, partition: Partition, offset: int) -> None:
        self._consumer.seek(self._assigned(partition), offset)

    def assignment(self) -> set[Partition]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def highwater(self, partition: Partition) -> int | None:
        high: int | None = self._consumer.highwater(self._assigned(partition))
        return high

    def _assigned(self, partition: Partition) -> TopicPartition:
        """The partition, checked first: for one not assigned, aiokafka's seek and highwater fail an
        ``assert`` (gone under ``python -O``) or raise ``IllegalStateError``."""
        tp = TopicPartition(*partition)
        if tp not in self._consumer.assignment():
            raise ConsumerError(f"{partition} is not assigned")
        return tp


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


def _record(tp: TopicPartition, m: ConsumerRecord[bytes, bytes]) -> InboundRecord:
    return InboundRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=m.offset,
        key=m.key,
        value=m.value,
        timestamp_ms=m.timestamp,
    )


async def read_all(bootstrap_servers: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on a topic right now, from its first offset to the end (no consumer group)."""
    from service.kafka.admin import partitions_of  # noqa: PLC0415  # admin imports settings

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        await consumer.start()  # in the try: a failed start is stopped too (no 'Unclosed' warning)
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
