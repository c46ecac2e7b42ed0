"""The composition root: settings refused before anything connects, no Kafka client types, and
readiness and liveness fed by the consume loop."""

from __future__ import annotations

import ast
import asyncio
import base64
import math
from pathlib import Path

import pytest

from service.app import Service
from service.domain.consume_policy import ConsumePolicy
from service.domain.errors import ConfigError, StoreUnavailable
from service.metrics import Metrics
from service.pipeline.consume_loop import ConsumeLoop
from service.settings import load_settings
from service.testing import FakeClock, FakeConsumer

SERVICE = Path(__file__).resolve().parents[2] / "service"
NOWHERE = {  # would hang if start-up tried to connect
    "database_url": "postgresql://nobody@192.0.2.1:1/none",
    "kafka_bootstrap_servers": "192.0.2.1:1",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


#: The composition root, the drivers, the stages and the domain: only service/kafka/ speaks aiokafka.
STAGES = ("pipeline", "intake", "dedup", "compose", "send", "report", "domain")
KAFKA_FREE = [
    "app.py",
    *sorted(str(p.relative_to(SERVICE)) for s in STAGES for p in (SERVICE / s).rglob("*.py")),
]


def test_the_kafka_free_list_covers_the_consume_loop() -> None:
    assert {"app.py", "pipeline/consume_loop.py", "domain/consume_policy.py"} <= set(KAFKA_FREE)


@pytest.mark.parametrize("module", KAFKA_FREE)
def test_the_composition_root_and_the_stages_import_no_kafka_client(module: str) -> None:
    assert not {n for n in _imports(SERVICE / module) if n.split(".")[0] == "aiokafka"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"blind_index_key": None}, "NOTIFIER_BLIND_INDEX_KEY is required"),
        (
            {"public_base_url": "http://127.0.0.1:8080", "link_signing_key": "not base64!"},
            "NOTIFIER_LINK_SIGNING_KEY must be base64",
        ),
        (
            {"public_base_url": "http://127.0.0.1:8080", "link_signing_key": None},
            "NOTIFIER_LINK_SIGNING_KEY is required",
        ),
    ],
)
def test_a_bad_key_stops_start_up_before_anything_connects_or_opens(
    overrides: dict[str, object], message: str
) -> None:
    s = load_settings(**{"blind_index_key": base64.b64encode(b"k" * 32).decode(), **NOWHERE, **overrides})
    service = Service(s)
    with pytest.raises(ConfigError, match=message):
        asyncio.run(asyncio.wait_for(service.run(asyncio.Event()), 5))
    assert service._store is None
    assert service._loop is None


def idle_loop(consumer: FakeConsumer, metrics: Metrics, clock: FakeClock) -> ConsumeLoop:
    """A consume loop that is watched, never run: what readiness, liveness and scrapes look at."""
    return ConsumeLoop(
        consumer=consumer,
        batches=None,  # type: ignore[arg-type]  # no batch is processed here
        sends=None,  # type: ignore[arg-type]
        database_up=None,  # type: ignore[arg-type]
        metrics=metrics,
        policy=ConsumePolicy(),
        batch_timeout_ms=200,
        batch_max_records=500,
        rebalance_drain_s=20,
        watchdog_stall_s=120,
        commit_stall_s=300,
        clock=clock,
    )


async def test_readiness_and_liveness_follow_the_consume_loop() -> None:
    consumer, clock, metrics = FakeConsumer([("t", 0)]), FakeClock(), Metrics()
    loop = idle_loop(consumer, metrics, clock)
    service = Service(load_settings(**NOWHERE), metrics=metrics, _loop=loop)
    assert await service._ready() == {"kafka_assigned": True, "database": False, "commits_advancing": True}
    assert await service._live()
    loop.stalled = True  # what the fetch watchdog says (tests/unit/pipeline/test_consume_loop.py)
    assert not await service._live()
    consumer.assigned.clear()
    assert (await service._ready())["kafka_assigned"] is False
    assert Service(load_settings(**NOWHERE)).assignment() == set()


class _Engine:
    def __init__(self) -> None:
        self.levels = {"twilio": 2, "sendgrid": 0}

    def circuit_levels(self) -> dict[str, int]:
        return dict(self.levels)


class _Store:
    def __init__(self) -> None:
        self.up = True

    async def ping(self) -> bool:
        return self.up

    async def outbox_backlog(self) -> tuple[int, float]:
        if not self.up:
            raise StoreUnavailable("database: ConnectionRefusedError")
        return 3, 42.0

    async def scheduled_backlog(self, *, now: object) -> tuple[int, float]:
        if not self.up:
            raise StoreUnavailable("database: ConnectionRefusedError")
        return 7, 5.0


async def test_a_scrape_computes_readiness_circuits_and_the_outbox_without_anyone_calling_readyz() -> None:
    consumer, metrics = FakeConsumer([("t", 0)]), Metrics()
    loop = idle_loop(consumer, metrics, FakeClock())
    engine, store = _Engine(), _Store()
    service = Service(load_settings(**NOWHERE), metrics=metrics, _loop=loop, _store=store)  # type: ignore[arg-type]
    service._watch(engine, loop, store, sms=["twilio"])  # type: ignore[arg-type]
    get = metrics.registry.get_sample_value
    assert get("notifier_ready") == 0  # nothing computed yet
    clock = FakeClock()
    await metrics.scrape(now=clock)
    assert get("notifier_ready") == 1
    assert (get("notifier_outbox_backlog"), get("notifier_outbox_oldest_seconds")) == (3, 42)
    assert (get("notifier_scheduled_sends"), get("notifier_scheduled_late_seconds")) == (7, 5)
    assert get("notifier_circuit_state", {"provider": "twilio"}) == 2
    assert get("notifier_consumer_lag") == 0
    # every provider's series at 0, the status look-ups only for SMS providers
    assert get("notifier_callbacks_total", {"provider": "sendgrid", "result": "forged"}) == 0
    assert get("notifier_status_reconciliations_total", {"provider": "twilio", "result": "gave_up"}) == 0
    assert get("notifier_status_reconciliations_total", {"provider": "sendgrid", "result": "gave_up"}) is None

    store.up, engine.levels["twilio"] = False, 1
    await metrics.scrape(now=clock)
    assert get("notifier_ready") == 1  # within a second of the last probes: their values stand
    assert get("notifier_circuit_state", {"provider": "twilio"}) == 1  # a collector: always fresh
    clock.now += 1.0
    await metrics.scrape(now=clock)
    assert get("notifier_ready") == 0
    assert math.isnan(get("notifier_outbox_backlog") or 0.0)
    assert math.isnan(get("notifier_scheduled_sends") or 0.0)  # unknown, not zero
    assert get("notifier_circuit_state", {"provider": "twilio"}) == 1
    consumer.assigned.clear()
    store.up = True
    clock.now += 1.0
    await metrics.scrape(now=clock)
    assert get("notifier_ready") == 0  # no partitions
