"""Offset discipline: what is committed after a batch, with and without unfinished records."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from service.kafka.consumer import next_offsets

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def _records(tp: TopicPartition, offsets: range) -> list[ConsumerRecord[bytes, bytes]]:
    return [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in offsets]


def test_a_finished_batch_commits_one_past_each_partitions_last_record() -> None:
    batch = {A: _records(A, range(10, 15)), B: _records(B, range(3, 4))}
    assert next_offsets(batch) == {A: 15, B: 4}


def test_a_partition_with_an_unfinished_record_commits_only_up_to_it() -> None:
    batch = {A: _records(A, range(10, 15)), B: _records(B, range(3, 6))}
    assert next_offsets(batch, {("t", 0): 12}) == {A: 12, B: 6}


def test_an_unfinished_first_record_commits_nothing_new() -> None:
    batch = {A: _records(A, range(10, 15))}
    assert next_offsets(batch, {("t", 0): 10}) == {A: 10}
