"""The composition root on the real stack: whatever fails at start-up, everything opened so far
is closed (the database pool, the HTTP session, the Kafka producer and consumer, the listeners)."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from dataclasses import dataclass

import asyncpg
import pytest

from service.app import Service
from service.settings import Settings
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


@dataclass
class Failed:
    error: type[BaseException]
    leaked: list[str]  # the ResourceWarnings of whatever was left open
    pool: asyncpg.Pool | None
    metrics_port: int | None


async def _start_failing(settings: Settings) -> Failed:
    """Run a service until its start-up fails, drop it, and collect what it left open."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        service = Service(settings)
        with pytest.raises(Exception) as raised:  # noqa: PT011  # each test checks its own error
            await asyncio.wait_for(service.run(asyncio.Event()), 60)
        error, pool = type(raised.value), service._store.pool if service._store is not None else None
        metrics_port = service.metrics_port
        del service, raised  # nothing holds the session, producer or consumer any more (the traceback did)
        await asyncio.sleep(0.1)  # let closed transports finish
        gc.collect()  # what was left open warns: "Unclosed client session", "Unclosed AIOKafkaProducer"
    leaked = [str(w.message)[:80] for w in caught if issubclass(w.category, ResourceWarning)]
    return Failed(error, leaked, pool, metrics_port)


async def _connections_left(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return count


def _can_bind(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_a_taken_port_at_start_up_closes_the_pool_the_session_and_kafka(settings: Settings) -> None:
    # The public listener starts after the pool, the session, the producer, the consumer and the
    # operations listener were opened.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.http_port))
        taken.listen()
        failed = await _start_failing(settings)
    assert issubclass(failed.error, OSError)
    assert failed.leaked == []
    assert failed.pool is not None
    assert failed.pool.is_closing()
    assert await _connections_left(settings.database_url) == 0
    assert failed.metrics_port is not None
    assert _can_bind(failed.metrics_port)  # the ops listener closed


async def test_a_broker_out_of_reach_at_start_up_closes_everything_opened_before(settings: Settings) -> None:
    # The producer starts last of all, after both listeners: they close again too.
    s = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    failed = await _start_failing(s)
    assert failed.error.__name__ == "KafkaConnectionError"
    assert failed.leaked == []
    assert failed.pool is not None
    assert failed.pool.is_closing()
    assert await _connections_left(s.database_url) == 0
    assert _can_bind(s.http_port)
    assert failed.metrics_port is not None
    assert _can_bind(failed.metrics_port)
