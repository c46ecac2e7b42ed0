"""Helpers for tests on the real stack: run a service instance, produce, read topics, wait."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from service.app import Service
from service.feed import publish_feed
from service.kafka.admin import partitions_of
from tests.builders import keyed_event


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    """Run a service instance in the background; stop it and wait for a clean shutdown on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Publish (key, value) pairs and wait until the broker has them all (the feed's publisher)."""
    await publish_feed(bootstrap, topic, messages)


async def read_topic(bootstrap: str, topic: str, *, at_least: int, timeout_s: float = 30.0) -> list:  # type: ignore[type-arg]
    """Every record on a topic from the beginning, waiting until there are ``at_least`` of them."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                records.extend(msgs)
            if len(records) >= at_least and not batch:
                break
    finally:
        await consumer.stop()
    return records


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def group_caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """True when the group's committed offsets reach the end of every partition of the topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets(await partitions_of(bootstrap, [topic]))
        done = {tp: c.offset for tp, c in committed.items()}
        return bool(ends) and all(done.get(tp, 0) >= end for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


#: An event for the real topic, as (key, value): see ``tests.builders.keyed_event``.
event = keyed_event


async def read_decisions(
    bootstrap: str, topic: str, at_least: int, timeout_s: float = 30
) -> list[dict[str, object]]:
    """The receipts that record a decision (not the later "delivered" reports), at least ``at_least``."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = await read_topic(bootstrap, topic, at_least=0, timeout_s=1)
        found = [d for d in (json.loads(r.value) for r in records) if d["outcome"] != "delivered"]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)
