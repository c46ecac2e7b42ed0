"""/healthz follows the liveness check (the watchdog), /readyz the readiness checks."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from service.http.server import create_app
from service.metrics import Metrics


async def test_healthz_fails_while_the_consumer_is_stalled_and_readyz_reports_each_check() -> None:
    live = {"ok": True}

    async def ready() -> dict[str, bool]:
        return {"kafka_assigned": True, "database": False}

    async def alive() -> bool:
        return live["ok"]

    metrics = Metrics()
    async with TestClient(TestServer(create_app(metrics, ready, alive))) as client:
        assert (await client.get("/healthz")).status == 200
        live["ok"] = False
        reply = await client.get("/healthz")
        assert reply.status == 503
        assert (await reply.json())["status"] == "stalled"
        reply = await client.get("/readyz")
        assert reply.status == 503
        assert (await reply.json())["checks"] == {"kafka_assigned": True, "database": False}
        assert metrics.registry.get_sample_value("notifier_ready") == 0
