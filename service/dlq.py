"""``notifier dlq list|replay``: look at dead letters, and re-inject them after a fix.

A dead letter's identity is its source record (``dlq.id``: source topic:partition:offset, also
its Kafka key; derived from the ``dlq.source_*`` headers for letters written before it existed).
The same source record read again after a crash is dead-lettered again under the same id: a
*repeat*, not a new dead letter.

``list`` counts the distinct dead letters by reason and source topic, with their repeats.
``replay`` copies the selected ones (by reason, and/or an offset range of the dead-letter topic)
back onto the topic they came from, unchanged, with its source key and a ``dlq.replayed_from``
header: each source record at most once per run (its latest letter), however many repeats
it has. A bounded copy (``dlq.value_omitted``: the record was too large to copy) has no value to
replay; it is skipped and counted. Replaying is safe to repeat: the service deduplicates per
(order, milestone), and a letter that still fails goes back to the dead-letter topic with its
reason. Only the operators who handle dead letters should be able to run this: the values hold
personal data.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TypedDict, Unpack

from aiokafka import AIOKafkaProducer, ConsumerRecord

from service.kafka.consumer import read_all
from service.progress import Report, quiet


@dataclass(frozen=True, slots=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None  # the source record's key (what a replay is keyed by)
    value: bytes | None
    reason: str
    source_topic: str
    id: str = ""  # the source record's identity: the same for every repeat
    value_omitted: bool = False  # a bounded copy: nothing to replay

    @property
    def replayable(self) -> bool:
        return bool(self.source_topic) and not self.value_omitted


def _letter(record: ConsumerRecord[bytes, bytes]) -> Letter:
    raw = dict(record.headers or ())
    headers = {k: v.decode(errors="replace") for k, v in raw.items()}
    source = headers.get("dlq.source_topic", "")
    ident = headers.get("dlq.id") or (
        f"{source}:{headers.get('dlq.source_partition', '')}:{headers.get('dlq.source_offset', '')}"
        if source
        else f"unknown:{record.partition}:{record.offset}"  # not ours: each letter counts alone
    )
    # A letter's own key is its id and the source key is in a header; before letters had ids,
    # the letter's key was the source key.
    key = raw.get("dlq.source_key") if "dlq.id" in raw else record.key
    return Letter(
        record.partition,
        record.offset,
        key,
        record.value,
        headers.get("dlq.reason", "unknown"),
        source,
        ident,
        headers.get("dlq.value_omitted") == "true",
    )


async def read_letters(bootstrap: str, topic: str) -> list[Letter]:
    """Every dead letter currently on the topic, oldest first per partition."""
    return [_letter(r) for r in await read_all(bootstrap, topic)]


def distinct(letters: list[Letter]) -> list[Letter]:
    """One letter per source record: its latest (a repeat may carry a later reason), in first-seen order."""
    latest: dict[str, Letter] = {}
    for x in letters:
        seen = latest.get(x.id)
        if seen is None or (x.partition, x.offset) > (seen.partition, seen.offset):
            latest[x.id] = x
    return list(latest.values())


def summary(letters: list[Letter]) -> str:
    unique = distinct(letters)
    repeats = collections.Counter(x.id for x in letters)
    counts = collections.Counter((x.reason, x.source_topic) for x in unique)
    extra = collections.Counter()  # type: collections.Counter[tuple[str, str]]
    for x in unique:
        extra[(x.reason, x.source_topic)] += repeats[x.id] - 1
    lines = [
        f"{n:>6}  {reason:<24} from {source}"
        + (f"  (+{extra[(reason, source)]} repeat(s))" if extra[(reason, source)] else "")
        for (reason, source), n in counts.most_common()
    ]
    head = f"{len(unique)} dead letter(s)"
    if len(letters) > len(unique):
        head += f" ({len(letters)} on the topic: {len(letters) - len(unique)} repeat(s) of the same source records)"
    return "\n".join([head, *lines])


class Filters(TypedDict, total=False):
    """What ``dlq list`` and ``dlq replay`` filter on; a filter not given passes every letter."""

    reason: str | None
    partition: int | None
    from_offset: int | None
    to_offset: int | None


def matching(letters: list[Letter], **f: Unpack[Filters]) -> list[Letter]:
    """The letters (repeats included) that pass every filter given: what ``list`` counts."""
    reason, partition = f.get("reason"), f.get("partition")
    from_offset, to_offset = f.get("from_offset"), f.get("to_offset")
    return [
        x
        for x in letters
        if (reason is None or x.reason == reason)
        and (partition is None or x.partition == partition)
        and (from_offset is None or x.offset >= from_offset)
        and (to_offset is None or x.offset <= to_offset)
    ]


def select(letters: list[Letter], **f: Unpack[Filters]) -> list[Letter]:
    """The letters to replay: matching the filters, with a source and a value, one per source record."""
    return distinct([x for x in matching(letters, **f) if x.replayable])


def omitted(letters: list[Letter]) -> int:
    """Distinct bounded copies: dead letters with no value to replay (read them at their source)."""
    return sum(x.value_omitted for x in distinct(letters))


async def replay(bootstrap: str, dlq_topic: str, letters: list[Letter], progress: Report = quiet) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        await producer.start()  # in the try: a failed start is stopped too (no 'Unclosed' warning)
        for n, x in enumerate(distinct(letters), start=1):
            origin = f"{dlq_topic}/{x.partition}/{x.offset}".encode()
            await producer.send(
                x.source_topic, value=x.value, key=x.key, headers=[("dlq.replayed_from", origin)]
            )
            progress(n, len(letters))
        await producer.flush()
    finally:
        await producer.stop()
    return len(letters)
