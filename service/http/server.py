"""``/metrics`` for Prometheus, ``/healthz`` (alive: fails when the consumer stalled) and ``/readyz``
(it is doing its job)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from service.logs import AccessLog
from service.metrics import Metrics

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


LiveCheck = Callable[[], Awaitable[bool]]


async def _always_live() -> bool:
    return True


def create_app(metrics: Metrics, ready: ReadyCheck, live: LiveCheck = _always_live) -> web.Application:
    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        if not await live():
            return web.json_response({"status": "stalled"}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        metrics.ready.set(1 if ok else 0)
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (to clean up) and the bound port (useful with port 0)."""
    runner = web.AppRunner(app, access_log_class=AccessLog)  # never a header: see service.logs
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
