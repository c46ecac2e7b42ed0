"""Dead letters that cannot be copied as they are, on the real stack: the partition still moves on.

A record the broker accepted compressed can be too large for our producer uncompressed
(``max_request_size``), or for the dead-letter topic's own limit (``max.message.bytes``). Either
way it must leave its partition as a bounded copy (reason, size, digest, coordinates), never
freeze the consumer in a retry loop.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.app import Service
from service.kafka.admin import ensure_topics
from service.settings import Settings
from tests.integration.helpers import event, group_caught_up, read_topic, running, wait_until

pytestmark = pytest.mark.integration

_PRODUCER_LIMIT = 1_048_576  # aiokafka's default max_request_size, which service/kafka/producer.py keeps


async def _publish_compressed(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """As a TMS with compression and a larger request limit would: the broker takes it compressed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", compression_type="gzip", max_request_size=8 * _PRODUCER_LIMIT
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _caught_up(s: Settings) -> bool:
    try:
        return await group_caught_up(s.kafka_bootstrap_servers, s.consumer_group, s.input_topics[0])
    except KafkaError:  # the group's coordinator is not known yet
        return False


async def test_a_record_too_large_to_dead_letter_as_it_is_leaves_its_partition_as_a_bounded_copy(
    settings: Settings,
) -> None:
    s = settings.model_copy(update={"poison_attempts": 2})
    topic = s.input_topics[0]
    # Not JSON, 1.5 MiB uncompressed (over the producer's limit), a few KiB gzipped (under the broker's).
    huge = b"{" + b"Chan Tai Man 9123 4567 " * 70_000
    assert len(huge) > _PRODUCER_LIMIT
    async with running(Service(s)) as service:
        await wait_until(lambda: bool(service.assignment()), what="partitions assigned")
        await _publish_compressed(
            s.kafka_bootstrap_servers,
            topic,
            [(b"same-key", huge), (b"same-key", event("OV-0001", "CUSTOMS_CLEARED")[1])],
        )
        await wait_until(
            lambda: _caught_up(s),
            timeout_s=45,
            what="the partition to move past the oversized record",
        )
    dead = await read_topic(s.kafka_bootstrap_servers, s.dead_letter_topic, at_least=1)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["dlq.reason"] == b"oversized"
    assert headers["dlq.first_reason"] == b"malformed_json"
    assert headers["dlq.value_omitted"] == b"true"
    assert int(headers["dlq.original_size"]) == len(huge)
    assert headers["dlq.original_sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert headers["dlq.source_topic"] == topic.encode()
    assert headers["dlq.source_offset"] == b"0"
    assert headers["dlq.source_key"] == b"same-key"
    partition = headers["dlq.source_partition"].decode()
    assert dead[0].key == headers["dlq.id"] == f"{topic}:{partition}:0".encode()
    assert b"Chan" not in (dead[0].value or b"")  # no prefix of the (personal) value is kept
    assert len(dead[0].value or b"") == 0


async def test_a_dead_letter_the_dead_letter_topic_refuses_falls_back_to_a_bounded_copy(
    settings: Settings,
) -> None:
    # The broker's own refusal (MESSAGE_SIZE_TOO_LARGE from the topic's max.message.bytes), which
    # fails every record of the producer batch: the others are sent again alone, in full.
    dlq_topic = f"{settings.dead_letter_topic}.small"
    await ensure_topics(
        settings.kafka_bootstrap_servers, {dlq_topic: 1}, {dlq_topic: {"max.message.bytes": "20000"}}
    )
    s = settings.model_copy(update={"dead_letter_topic": dlq_topic})
    topic = s.input_topics[0]
    noise = b"{" + base64.b64encode(os.urandom(60_000))  # barely compresses: over 20 kB gzipped too
    async with running(Service(s)) as service:
        await wait_until(lambda: bool(service.assignment()), what="partitions assigned")
        await _publish_compressed(
            s.kafka_bootstrap_servers, topic, [(b"k", noise), (b"k", b"{small but bad"), (b"k", b"[]")]
        )
        await wait_until(
            lambda: _caught_up(s),
            timeout_s=45,
            what="the partition to move past the refused dead letter",
        )
    dead = {r.key: r for r in await read_topic(s.kafka_bootstrap_servers, dlq_topic, at_least=3)}
    partition = dict(next(iter(dead.values())).headers)["dlq.source_partition"].decode()
    ids = [f"{topic}:{partition}:{n}".encode() for n in range(3)]
    assert sorted(dead) == sorted(ids)
    big = dict(dead[ids[0]].headers)
    assert (big["dlq.reason"], big["dlq.first_reason"]) == (b"oversized", b"malformed_json")
    assert int(big["dlq.original_size"]) == len(noise)
    assert dead[ids[1]].value == b"{small but bad"  # its neighbours keep their values
    assert dict(dead[ids[1]].headers)["dlq.reason"] == b"malformed_json"
    assert dead[ids[2]].value == b"[]"
