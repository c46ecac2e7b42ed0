"""The two HTTP listeners and what every route on them shares.

The operations listener (``NOTIFIER_METRICS_HOST``/``_PORT``) serves ``/metrics`` for Prometheus,
``/healthz`` (alive: fails when the consumer stalled) and ``/readyz`` (it is doing its job), so
they can be kept off the public ingress. The public listener (``NOTIFIER_HTTP_HOST``/``_PORT``)
serves the callbacks and pages, never those.

Both answer an error without details: a body that cannot be parsed gets 400, anything unexpected a
plain 500 JSON (the log names the error's class and the route's pattern, never a value), and
request bodies are bounded (``client_max_size``: larger gets 413).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web, web_request
from prometheus_client import CONTENT_TYPE_LATEST

from service.http.security_headers import security_headers
from service.logs import AccessLog, get_logger
from service.metrics import Metrics

log = get_logger(__name__)

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


LiveCheck = Callable[[], Awaitable[bool]]

#: Bodies the operations listener takes: none of its routes reads one.
_OPS_MAX_BODY = 1024
#: Most fields in a form (a Twilio callback has about 20).
MAX_FORM_FIELDS = 100
_REQUEST_MODULE = web_request.__file__


class BadBody(Exception):
    """A request body that cannot be read as what the route expects: answered 400."""


async def _always_live() -> bool:
    return True


def _raised_reading_the_body(exc: BaseException) -> bool:
    """Whether ``exc`` came out of aiohttp's request body readers (post, json, text, multipart)."""
    if isinstance(exc, BadBody):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _REQUEST_MODULE:
            return True
        tb = tb.tb_next
    return False


@web.middleware
async def plain_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No route answers with a traceback: unreadable bodies get 400, anything unexpected 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        route = request.match_info.route.resource
        pattern = route.canonical if route is not None else "-"
        if _raised_reading_the_body(exc):
            log.info("http_bad_body", error=type(exc).__name__, route=pattern)
            return web.json_response({"error": "bad request"}, status=400)
        log.error("http_unexpected_error", error=type(exc).__name__, route=pattern)
        return web.json_response({"error": "internal error"}, status=500)


def create_public_app(max_body_bytes: int) -> web.Application:
    """The application the callbacks and pages are added to."""
    return web.Application(middlewares=[security_headers, plain_errors], client_max_size=max_body_bytes)


async def read_form(request: web.Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, strictly UTF-8, at most ``MAX_FORM_FIELDS``
    fields (a repeated field keeps its last value); ``BadBody`` otherwise."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadBody("not a form")
    try:
        text = (await request.read()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeError, ValueError):
        raise BadBody("unreadable form") from None
    return dict(pairs)


def create_app(metrics: Metrics, ready: ReadyCheck, live: LiveCheck = _always_live) -> web.Application:
    """The operations application: ``/metrics`` (``Metrics.scrape``: its probes, then the
    exposition), ``/healthz``, ``/readyz``."""

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=await metrics.scrape(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        if not await live():
            return web.json_response({"status": "stalled"}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        metrics.ready.set(1 if ok else 0)
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    app = web.Application(middlewares=[security_headers, plain_errors], client_max_size=_OPS_MAX_BODY)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http(
    app: web.Application, host: str, port: int, *, reuse_port: bool = False
) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (to clean up) and the bound port (useful with port 0).
    ``reuse_port``: share the port with other processes (the workers of ``service.workers``)."""
    runner = web.AppRunner(app, access_log_class=AccessLog)  # never a header: see service.logs
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    except BaseException:  # the port is taken, say: close what setup opened
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
