"""An idempotent producer that lost its sequence state (a broker restart with batches in flight)
never sends again: ``RenewableProducer`` replaces it, and the sends after that go through."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, OutOfOrderSequenceNumber

from service.domain.outcome import OutboxRow
from service.kafka.producer import PublishFailed, ReceiptPublisher, RenewableProducer


class Broken:
    """A producer whose every send fails with ``error`` (None: acknowledged)."""

    def __init__(self, error: KafkaError | None) -> None:
        self.error = error
        self.started = self.stopped = False
        self.sent = 0

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[object]:
        self.sent += 1
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.error is None:
            future.set_result(None)
        else:
            future.set_exception(self.error)
        return future


def _row() -> OutboxRow:
    return OutboxRow(uuid.uuid4(), uuid.uuid4(), "ORD-1", b"{}")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_producer_that_lost_its_sequence_state_is_replaced_and_the_next_send_goes_through() -> None:
    first, second = Broken(OutOfOrderSequenceNumber()), Broken(None)
    made = [first, second]
    producer = RenewableProducer(lambda: made.pop(0))  # type: ignore[arg-type, return-value]
    await producer.start()
    publisher = ReceiptPublisher(producer, "receipts")
    with pytest.raises(PublishFailed):
        await publisher.publish([_row()])
    await _settle()
    assert producer.renewals == 1
    assert second.started
    assert first.stopped
    await publisher.publish([_row()])  # through the new producer
    assert (first.sent, second.sent) == (1, 1)


async def test_a_transient_error_keeps_the_producer() -> None:
    made = [Broken(KafkaConnectionError()), Broken(None)]
    producer = RenewableProducer(lambda: made.pop(0))  # type: ignore[arg-type, return-value]
    await producer.start()
    for _ in range(3):
        with contextlib.suppress(PublishFailed):
            await ReceiptPublisher(producer, "receipts").publish([_row()])
    await _settle()
    assert producer.renewals == 0
    assert len(made) == 1  # never asked for another


async def test_many_failed_sends_at_once_replace_the_producer_once() -> None:
    made = [Broken(OutOfOrderSequenceNumber()), Broken(None), Broken(None)]
    producer = RenewableProducer(lambda: made.pop(0))  # type: ignore[arg-type, return-value]
    await producer.start()
    futures = [await producer.send("t", value=b"x", key=None, headers=[]) for _ in range(10)]
    await asyncio.gather(*futures, return_exceptions=True)
    await _settle()
    assert producer.renewals == 1
    assert len(made) == 1
