"""Publishing to Kafka: receipts and dead letters, both awaited until the broker acknowledges them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidProducerEpoch,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownProducerId,
)

from service.domain.errors import NotifierError
from service.domain.outcome import OutboxRow
from service.domain.ports import DeadLetter
from service.logs import get_logger
from service.metrics import Metrics

log = get_logger(__name__)


class PublishFailed(NotifierError):
    """The broker did not acknowledge a message; the caller must not commit the input offsets."""

    retriable = True


def build_producer(bootstrap_servers: str, client_id: str = "milestone-notifier") -> AIOKafkaProducer:
    # Idempotent, acks=all, a short linger so a batch's receipts travel together.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        compression_type="gzip",
        request_timeout_ms=30_000,
    )


_Send = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]  # topic, key, value, headers


class Producer(Protocol):
    """What the publishers need of a producer (``AIOKafkaProducer``, ``RenewableProducer``)."""

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


#: Errors after which an idempotent producer never sends again (its sequence state is lost, e.g.
#: after a broker restart with batches in flight): the producer must be replaced.
FATAL_FOR_PRODUCER: tuple[type[KafkaError], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)

RENEW_STOP_TIMEOUT_S = 5.0


class RenewableProducer:
    """An idempotent producer that replaces itself when it reports an error it cannot recover from
    (``FATAL_FOR_PRODUCER``). The send that saw it fails (its receipts stay in the outbox, its
    batch is retried); sends after the replacement go through the new producer."""

    def __init__(self, make: Callable[[], AIOKafkaProducer]) -> None:
        self._make = make
        self._producer = make()
        self._renewing: asyncio.Task[None] | None = None
        self.renewals = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        if self._renewing is not None:
            with contextlib.suppress(Exception):
                await self._renewing
        await self._producer.stop()

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[object]:
        producer = self._producer
        future: asyncio.Future[object] = await producer.send(topic, value=value, key=key, headers=headers)
        future.add_done_callback(lambda f: self._check(producer, f))
        return future

    def _check(self, producer: AIOKafkaProducer, future: asyncio.Future[object]) -> None:
        if future.cancelled() or not isinstance(future.exception(), FATAL_FOR_PRODUCER):
            return
        if producer is self._producer and self._renewing is None:
            self._renewing = asyncio.get_running_loop().create_task(self._renew(producer))

    async def _renew(self, broken: AIOKafkaProducer) -> None:
        try:
            fresh = self._make()
            await fresh.start()
            self._producer = fresh
            self.renewals += 1
            log.warning("producer_renewed", reason="fatal_producer_error")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broken.stop(), RENEW_STOP_TIMEOUT_S)
        except Exception as exc:  # broker still down: the next fatal error tries again
            log.warning("producer_renew_failed", error=type(exc).__name__)
        finally:
            self._renewing = None


async def _send_all(producer: Producer, sends: list[_Send]) -> None:
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for topic, key, value, headers in sends
        ]
        await asyncio.gather(*futures)
    except KafkaError as exc:
        raise PublishFailed(f"kafka: {type(exc).__name__}") from exc


async def _send_each(producer: Producer, sends: list[_Send]) -> list[KafkaError | None]:
    """Send every message, each to its own fate: the error of each one (None: acknowledged)."""
    results: list[KafkaError | None] = []
    pending: list[tuple[int, asyncio.Future[object]]] = []
    for n, (topic, key, value, headers) in enumerate(sends):
        results.append(None)
        try:  # the size check against max_request_size is made here, before anything is queued
            pending.append((n, await producer.send(topic, value=value, key=key, headers=headers)))
        except KafkaError as exc:
            results[n] = exc
    done = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
    for (n, _), outcome in zip(pending, done, strict=True):
        if isinstance(outcome, KafkaError):
            results[n] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome
    return results


class ReceiptPublisher:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        await _send_all(
            self._producer,
            [
                (self._topic, r.order_id.encode(), r.payload, [("receipt_id", str(r.receipt_id).encode())])
                for r in receipts
            ],
        )


#: Produce errors that are about the record itself, not the broker's health: sending the same
#: record again fails the same way. The size checks (ours against ``max_request_size``, the
#: broker's against ``max.message.bytes``) and a record the broker calls corrupt or invalid.
#: (aiokafka 0.14 reports INVALID_RECORD, code 87, as ``UnknownError``, which is also what an
#: unknown server fault looks like: that one stays transient and is retried.)
PERMANENT_FOR_RECORD: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
)

_KEY_KEPT_MAX = 1024  # a source key longer than this is not kept in a bounded copy's headers


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The stable identity of a dead letter: its source coordinates. The same source record read
    again (after a crash, a rebalance, a retry) is dead-lettered under the same id."""
    return f"{topic}:{partition}:{offset}"


class DeadLetterPublisher:
    """Copies an unprocessable message to the dead-letter topic with its origin and reason in headers.

    The value is copied unchanged (it may hold personal data: the DLQ topic has its own short
    retention and restricted ACLs in production); the headers carry no personal data. The letter's
    Kafka key is its ``dlq.id`` (source topic:partition:offset), so a repeat of the same source
    record lands on the same DLQ partition under the same key; the source key is in
    ``dlq.source_key``, for replay.

    A letter the producer or broker refuses for what it is (too large uncompressed for our
    ``max_request_size``, over the DLQ topic's ``max.message.bytes``, corrupt) is first sent again
    alone (the broker fails a whole producer batch for one bad record), and if it is still refused
    it goes as a *bounded copy*: no value, and headers with the reason (``oversized`` or
    ``unpublishable``), the first reason, the original size and SHA-256 of the value. The value is
    left out rather than cut: a prefix holds personal data, cannot be replayed, and the record
    itself stays on its source topic at the given coordinates (for that topic's retention), which
    the digest identifies. Transient errors (broker down, timeouts) still propagate, so the batch
    is retried and nothing is committed.
    """

    def __init__(self, producer: Producer, topic: str, metrics: Metrics | None = None) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        now = datetime.now(UTC).isoformat()
        errors = await _send_each(self._producer, [self._full(d, now) for d in letters])
        refused = [(d, e) for d, e in zip(letters, errors, strict=True) if e is not None]
        _raise_transient([e for _, e in refused])
        for d, _ in refused:  # refused for what it is (or for a neighbour in its batch): alone now
            (error,) = await _send_each(self._producer, [self._full(d, now)])
            if error is None:
                continue
            _raise_transient([error])
            (again,) = await _send_each(self._producer, [self._bounded(d, now, error)])
            if again is not None:
                raise PublishFailed(f"kafka: {type(again).__name__}") from again
            reason = _bounded_reason(error)
            if self._metrics is not None:
                self._metrics.dead_letters_bounded.labels(reason).inc()
            log.warning(
                "dead_letter_bounded",
                reason=reason,
                first_reason=d.reason,
                error=type(error).__name__,
                size=len(d.record.value or b""),
                topic=d.record.topic,
                partition=d.record.partition,
                offset=d.record.offset,
            )

    def _headers(self, d: DeadLetter, now: str) -> list[tuple[str, bytes]]:
        r = d.record
        return [
            ("dlq.id", dead_letter_id(r.topic, r.partition, r.offset).encode()),
            ("dlq.reason", d.reason.encode()),
            ("dlq.detail", d.detail.encode()[:1000]),
            ("dlq.error_class", d.error_class.encode()),
            ("dlq.source_topic", r.topic.encode()),
            ("dlq.source_partition", str(r.partition).encode()),
            ("dlq.source_offset", str(r.offset).encode()),
            ("dlq.attempts", str(d.attempts).encode()),
            ("dlq.dead_lettered_at", now.encode()),
        ]

    def _full(self, d: DeadLetter, now: str) -> _Send:
        r = d.record
        headers = self._headers(d, now)
        if r.key is not None:
            headers.append(("dlq.source_key", r.key))
        return (self._topic, headers[0][1], r.value, headers)

    def _bounded(self, d: DeadLetter, now: str, error: KafkaError) -> _Send:
        r = d.record
        value = r.value or b""
        headers = [
            (k, _bounded_reason(error).encode()) if k == "dlq.reason" else (k, v)
            for k, v in self._headers(d, now)
        ]
        headers += [
            ("dlq.first_reason", d.reason.encode()),
            ("dlq.copy_error", type(error).__name__.encode()),
            ("dlq.value_omitted", b"true"),
            ("dlq.original_size", str(len(value)).encode()),
            ("dlq.original_sha256", hashlib.sha256(value).hexdigest().encode()),
            ("dlq.original_key_size", str(len(r.key or b"")).encode()),
        ]
        if r.key is not None and len(r.key) <= _KEY_KEPT_MAX:
            headers.append(("dlq.source_key", r.key))
        return (self._topic, headers[0][1], b"", headers)


def _bounded_reason(error: KafkaError) -> str:
    too_large = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
    return "oversized" if isinstance(error, too_large) else "unpublishable"


def _raise_transient(errors: Sequence[KafkaError]) -> None:
    for e in errors:
        if not isinstance(e, PERMANENT_FOR_RECORD):
            raise PublishFailed(f"kafka: {type(e).__name__}") from e


class Publishers:
    """The one producer and what publishes through it, for the composition root."""

    def __init__(
        self, bootstrap_servers: str, *, receipts_topic: str, dead_letter_topic: str, metrics: Metrics
    ) -> None:
        self._producer = RenewableProducer(lambda: build_producer(bootstrap_servers))
        self.receipts = ReceiptPublisher(self._producer, receipts_topic)
        self.dead_letters = DeadLetterPublisher(self._producer, dead_letter_topic, metrics)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        """Flush what is pending and close; a broker gone by now changes nothing (logged by aiokafka)."""
        with contextlib.suppress(KafkaError):
            await self._producer.stop()
