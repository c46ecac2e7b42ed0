"""Poison input on the real stack: an event PostgreSQL itself refuses, every time, while it is up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from service.app import Service
from service.sandbox.serve import SandboxState
from service.settings import Settings
from tests.integration.helpers import event, group_caught_up, produce, read_topic, running, wait_until

pytestmark = pytest.mark.integration


async def test_an_event_that_keeps_failing_goes_to_the_dead_letter_topic_and_its_partition_moves_on(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = settings.model_copy(update={"poison_attempts": 2})
    topic = s.input_topics[0]
    async with running(Service(s)) as service:
        await wait_until(lambda: bool(service.assignment()), what="partitions assigned (migrations have run)")
        # A real refusal by PostgreSQL of one order only, as a data or schema problem would cause:
        # the database is up and the batch holding it fails every time it is tried.
        conn = await asyncpg.connect(s.database_url)
        try:
            await conn.execute(
                "ALTER TABLE notifications ADD CONSTRAINT poison_test CHECK (order_id <> 'PZ-POISON')"
            )
        finally:
            await conn.close()
        await produce(  # one key, one partition: the poison sits between two good events
            s.kafka_bootstrap_servers,
            topic,
            [
                (b"same-key", event("PZ-0001", "CUSTOMS_CLEARED")[1]),
                (b"same-key", event("PZ-POISON", "CUSTOMS_CLEARED")[1]),
                (b"same-key", event("PZ-0002", "CUSTOMS_CLEARED")[1]),
            ],
        )
        dead = await read_topic(s.kafka_bootstrap_servers, s.dead_letter_topic, at_least=1, timeout_s=30)
        await wait_until(
            lambda: group_caught_up(s.kafka_bootstrap_servers, s.consumer_group, topic),
            what="the partition to move past the poison",
        )

    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["dlq.reason"] == b"processing_failed"
    assert headers["dlq.error_class"] == b"StoreUnavailable"
    assert int(headers["dlq.attempts"]) == 3
    assert b"PZ-POISON" in dead[0].value  # the event itself, to replay after the fix
    bodies = [m.body for m in state.messages]
    assert any("PZ-0001" in b for b in bodies)
    assert any("PZ-0002" in b for b in bodies)
    assert not any("PZ-POISON" in b for b in bodies)


async def test_a_partition_whose_commits_stop_while_records_wait_makes_the_instance_unready(
    settings: Settings,
) -> None:
    # The batch fails every time (PostgreSQL refuses it) but the database answers and the consumer
    # keeps fetching: neither the database check nor the fetch watchdog sees it. The commit watch does.
    s = settings.model_copy(update={"poison_attempts": 100, "commit_stall_s": 1.0})
    topic = s.input_topics[0]
    async with running(Service(s)) as service:

        async def ready() -> bool:
            return all((await service._ready()).values())

        await wait_until(lambda: bool(service.assignment()), what="partitions assigned (migrations have run)")
        await wait_until(ready, what="ready before the poison")
        conn = await asyncpg.connect(s.database_url)
        try:
            await conn.execute(
                "ALTER TABLE notifications ADD CONSTRAINT poison_test CHECK (order_id <> 'PZ-STUCK')"
            )
            await produce(
                s.kafka_bootstrap_servers, topic, [(b"stuck", event("PZ-STUCK", "CUSTOMS_CLEARED")[1])]
            )
            await wait_until(lambda: _not(ready), what="readiness to fail while the partition is stuck")
            checks = await service._ready()
            assert checks["commits_advancing"] is False
            assert checks["database"] is True  # the database answers: only the commit watch sees it
            assert _gauge(service, "notifier_commit_stalled_partitions") == 1
            assert _gauge(service, "notifier_commit_stall_seconds") > 1
            await conn.execute("ALTER TABLE notifications DROP CONSTRAINT poison_test")
        finally:
            await conn.close()
        await wait_until(ready, what="ready again once the partition moves on")
        await wait_until(
            lambda: group_caught_up(s.kafka_bootstrap_servers, s.consumer_group, topic),
            what="the partition committed to its end",
        )
        assert _gauge(service, "notifier_commit_stalled_partitions") == 0


async def _not(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()


def _gauge(service: Service, name: str) -> float:
    value = service.metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value
