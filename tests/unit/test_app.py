"""The consume loop's commit: a commit refused (rebalance, broker trouble) is survived, not fatal."""

from __future__ import annotations

import pytest
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from service.app import Service


class RefusingConsumer:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.asked.append(offsets)
        raise self.error


@pytest.mark.parametrize("error", [CommitFailedError("rebalanced"), IllegalStateError("not assigned")])
async def test_a_commit_refused_after_a_rebalance_is_logged_and_survived(error: Exception) -> None:
    consumer = RefusingConsumer(error)
    offsets = {TopicPartition("t", 0): 42, TopicPartition("t", 1): 7}
    with capture_logs() as logs:
        await Service._commit(consumer, offsets)  # type: ignore[arg-type]  # only commit() is used
    assert consumer.asked == [offsets]  # explicit offsets, never a bare commit()
    assert [(e["event"], e["partitions"]) for e in logs] == [("commit_failed_after_rebalance", 2)]


async def test_a_commit_the_broker_could_not_take_is_logged_and_left_to_the_next_one() -> None:
    # The batch is durable in PostgreSQL: a later commit covers these offsets (or, after a stop,
    # the records are read again and deduplicated). The service must not crash over it.
    consumer = RefusingConsumer(KafkaConnectionError("broker gone"))
    with capture_logs() as logs:
        await Service._commit(consumer, {TopicPartition("t", 0): 1})  # type: ignore[arg-type]
    assert [(e["event"], e["error"]) for e in logs] == [("commit_failed", "KafkaConnectionError")]


async def test_a_bug_in_the_commit_is_not_swallowed() -> None:
    consumer = RefusingConsumer(TypeError("offsets"))
    with pytest.raises(TypeError):
        await Service._commit(consumer, {TopicPartition("t", 0): 1})  # type: ignore[arg-type]
