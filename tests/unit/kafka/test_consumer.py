"""The consumer adapter: our partitions and records in and out, aiokafka's errors translated."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaError

from service.domain.errors import CommitRefused, ConsumerError, ConsumerUnavailable
from service.domain.model import InboundRecord
from service.kafka.consumer import KafkaConsumer


class RawConsumer:
    """The few AIOKafkaConsumer calls the adapter makes."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.asked: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        self.stopped = False

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.asked.append(offsets)
        if self.error is not None:
            raise self.error

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        return self.fetched

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", 0), TopicPartition("t", 1)}

    def highwater(self, tp: TopicPartition) -> int | None:
        return 40 if tp.partition == 0 else None

    async def stop(self) -> None:
        self.stopped = True
        if self.error is not None:
            raise self.error


def _adapter(raw: RawConsumer) -> KafkaConsumer:
    return KafkaConsumer(raw)  # type: ignore[arg-type]  # only the calls above are made


async def test_a_commit_sends_explicit_offsets_never_a_bare_commit() -> None:
    raw = RawConsumer()
    await _adapter(raw).commit({("t", 0): 42, ("t", 1): 7})
    assert raw.asked == [{TopicPartition("t", 0): 42, TopicPartition("t", 1): 7}]


@pytest.mark.parametrize("error", [CommitFailedError("rebalanced"), IllegalStateError("not assigned")])
async def test_a_commit_refused_after_a_rebalance_is_commit_refused(error: Exception) -> None:
    with pytest.raises(CommitRefused) as raised:
        await _adapter(RawConsumer(error)).commit({("t", 0): 1})
    assert raised.value.__cause__ is error
    assert not raised.value.retriable


async def test_a_commit_the_broker_could_not_take_is_consumer_unavailable_naming_the_error() -> None:
    with pytest.raises(ConsumerUnavailable, match=r"^KafkaConnectionError$") as raised:
        await _adapter(RawConsumer(KafkaConnectionError("broker gone"))).commit({("t", 0): 1})
    assert raised.value.retriable


async def test_a_bug_in_the_commit_is_not_translated() -> None:
    with pytest.raises(TypeError):
        await _adapter(RawConsumer(TypeError("offsets"))).commit({("t", 0): 1})


async def test_a_fetch_comes_back_as_our_records_keyed_by_our_partitions() -> None:
    raw = RawConsumer()
    tp = TopicPartition("t", 1)
    raw.fetched = {
        tp: [ConsumerRecord("t", 1, o, 1_700_000_000_000 + o, 0, b"k", b"v", None, 1, 1, ()) for o in (5, 6)],
        TopicPartition("t", 0): [],
    }
    batch = await _adapter(raw).getmany(timeout_ms=10, max_records=5)
    assert batch == {
        ("t", 1): [
            InboundRecord("t", 1, 5, b"k", b"v", 1_700_000_000_005),
            InboundRecord("t", 1, 6, b"k", b"v", 1_700_000_000_006),
        ]
    }


def test_seek_assignment_and_high_watermarks_in_our_partitions() -> None:
    raw = RawConsumer()
    adapter = _adapter(raw)
    adapter.seek(("t", 1), 9)
    assert raw.seeks == [(TopicPartition("t", 1), 9)]
    assert adapter.assignment() == {("t", 0), ("t", 1)}
    assert (adapter.highwater(("t", 0)), adapter.highwater(("t", 1))) == (40, None)


async def test_stopping_when_the_broker_is_gone_is_survived() -> None:
    raw = RawConsumer(KafkaError("gone"))
    await _adapter(raw).stop()
    assert raw.stopped


def test_a_seek_or_high_watermark_of_a_partition_not_assigned_is_a_consumer_error() -> None:
    adapter = _adapter(RawConsumer())
    with pytest.raises(ConsumerError, match="not assigned"):
        adapter.seek(("t", 2), 0)
    with pytest.raises(ConsumerError, match="not assigned"):
        adapter.highwater(("u", 0))
