"""Dead-lettering when a copy is refused: permanent refusals fall back to a bounded copy, transient
errors propagate (the batch is retried). The broker's behaviour is reproduced on the real stack in
tests/integration/test_dead_letter_bounds.py; here the decisions, with a producer that refuses."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError, UnknownError

from service.domain.model import InboundRecord
from service.domain.ports import DeadLetter
from service.kafka.producer import DeadLetterPublisher, PublishFailed
from service.metrics import Metrics

Sent = tuple[str, bytes | None, bytes | None, dict[str, bytes]]


class RefusingProducer:
    """Acknowledges a message unless ``refuse`` returns an error for it (raised at send, or later)."""

    def __init__(self, refuse: Callable[[bytes | None], KafkaError | None], *, at_send: bool = False) -> None:
        self.refuse = refuse
        self.at_send = at_send
        self.sent: list[Sent] = []
        self.calls = 0

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        self.calls += 1
        error = self.refuse(value)
        if error is not None and self.at_send:
            raise error
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if error is None:
            self.sent.append((topic, key, value, dict(headers)))
            future.set_result(None)
        else:
            future.set_exception(error)
        return future


def _letter(offset: int, value: bytes, key: bytes | None = b"ORD-1") -> DeadLetter:
    return DeadLetter(
        InboundRecord("in", 2, offset, key, value, 0), "malformed_json", "json", "EventRejected"
    )


def _big(value: bytes | None) -> KafkaError | None:
    return MessageSizeTooLargeError() if value is not None and len(value) > 100 else None


async def test_a_letter_too_large_to_copy_goes_as_a_bounded_copy_with_its_size_digest_and_coordinates() -> (
    None
):
    producer = RefusingProducer(_big, at_send=True)  # our own max_request_size check
    metrics = Metrics()
    huge = b"x" * 500
    await DeadLetterPublisher(producer, "dlq", metrics).publish([_letter(7, huge), _letter(8, b"{bad")])  # type: ignore[arg-type]
    by_offset = {h["dlq.source_offset"]: (key, value, h) for _, key, value, h in producer.sent}
    key, value, h = by_offset[b"7"]
    assert value == b""
    assert key == h["dlq.id"] == b"in:2:7"
    assert h["dlq.reason"] == b"oversized"
    assert h["dlq.first_reason"] == b"malformed_json"
    assert h["dlq.original_size"] == b"500"
    assert h["dlq.original_sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert (h["dlq.source_topic"], h["dlq.source_partition"], h["dlq.source_key"]) == (b"in", b"2", b"ORD-1")
    assert h["dlq.copy_error"] == b"MessageSizeTooLargeError"
    assert by_offset[b"8"][1] == b"{bad"  # the other letter is copied in full
    assert (
        metrics.registry.get_sample_value("notifier_dead_letters_bounded_total", {"reason": "oversized"}) == 1
    )


async def test_a_batch_the_broker_refuses_for_one_record_is_sent_again_alone_so_the_others_keep_their_value() -> (
    None
):
    # The broker fails every record of a producer batch with the bad one's error: here the first
    # two sends (the batch), then only the record that is too large.
    producer = RefusingProducer(
        lambda value: MessageSizeTooLargeError() if producer.calls <= 2 else _big(value)
    )
    await DeadLetterPublisher(producer, "dlq").publish([_letter(1, b"x" * 500), _letter(2, b"{bad")])  # type: ignore[arg-type]
    got = {h["dlq.source_offset"]: (value, h["dlq.reason"]) for _, _, value, h in producer.sent}
    assert got == {b"1": (b"", b"oversized"), b"2": (b"{bad", b"malformed_json")}


@pytest.mark.parametrize("error", [KafkaConnectionError(), UnknownError()], ids=["broker down", "unknown"])
async def test_a_transient_error_propagates_and_sends_no_bounded_copy(error: KafkaError) -> None:
    producer = RefusingProducer(lambda _: error)
    with pytest.raises(PublishFailed):
        await DeadLetterPublisher(producer, "dlq").publish([_letter(1, b"x" * 500)])  # type: ignore[arg-type]
    assert producer.sent == []  # nothing committed upstream: the batch is retried as before


async def test_a_repeat_of_the_same_source_record_has_the_same_key_and_id() -> None:
    producer = RefusingProducer(lambda _: None)
    publisher = DeadLetterPublisher(producer, "dlq")
    await publisher.publish([_letter(5, b"{bad")])  # type: ignore[arg-type]
    await publisher.publish([_letter(5, b"{bad")])  # type: ignore[arg-type]  # read again after a crash
    (_, k1, _, h1), (_, k2, _, h2) = producer.sent
    assert k1 == k2 == h1["dlq.id"] == h2["dlq.id"] == b"in:2:5"
    assert h1["dlq.source_key"] == b"ORD-1"
