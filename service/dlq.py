"""``notifier dlq list|replay``: look at dead letters, and re-inject them after a fix.

``list`` counts the dead letters by reason and source topic. ``replay`` copies the selected
ones (by reason, and/or an offset range of the dead-letter topic) back onto the topic they came
from, unchanged, with a ``dlq.replayed_from`` header. Replaying is safe to repeat: the service
deduplicates per (order, milestone), and a letter that still fails goes back to the dead-letter
topic with its reason. Only the operators who handle dead letters should be able to run this:
the values hold personal data.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, ConsumerRecord

from service.kafka.consumer import read_all


@dataclass(frozen=True, slots=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    source_topic: str


def _letter(record: ConsumerRecord[bytes, bytes]) -> Letter:
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    return Letter(
        record.partition,
        record.offset,
        record.key,
        record.value,
        headers.get("dlq.reason", "unknown"),
        headers.get("dlq.source_topic", ""),
    )


async def read_letters(bootstrap: str, topic: str) -> list[Letter]:
    """Every dead letter currently on the topic, oldest first per partition."""
    return [_letter(r) for r in await read_all(bootstrap, topic)]


def summary(letters: list[Letter]) -> str:
    counts = collections.Counter((x.reason, x.source_topic) for x in letters)
    lines = [f"{n:>6}  {reason:<24} from {source}" for (reason, source), n in counts.most_common()]
    return "\n".join([f"{len(letters)} dead letter(s)", *lines])


def select(
    letters: list[Letter], *, reason: str | None, from_offset: int | None, to_offset: int | None
) -> list[Letter]:
    return [
        x
        for x in letters
        if (reason is None or x.reason == reason)
        and (from_offset is None or x.offset >= from_offset)
        and (to_offset is None or x.offset <= to_offset)
        and x.source_topic
    ]


def _progress(done: int, total: int) -> None:
    filled = 30 * done // max(total, 1)
    sys.stderr.write(f"\rreplaying [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
    sys.stderr.flush()


async def replay(
    bootstrap: str, dlq_topic: str, letters: list[Letter], progress: Callable[[int, int], None] = _progress
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for n, x in enumerate(letters, start=1):
            origin = f"{dlq_topic}/{x.partition}/{x.offset}".encode()
            await producer.send(
                x.source_topic, value=x.value, key=x.key, headers=[("dlq.replayed_from", origin)]
            )
            progress(n, len(letters))
        await producer.flush()
    finally:
        await producer.stop()
    if letters:
        sys.stderr.write("\n")
    return len(letters)
