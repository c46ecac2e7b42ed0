"""The sandbox provider: Twilio, Infobip and SendGrid on one loopback port, plus control endpoints.

Provider APIs: see ``service.sandbox.twilio``, ``.infobip`` and ``.sendgrid``.
Control endpoints for tests and demos (not any provider's, no auth):

    GET    /sandbox/messages[?provider=twilio]   every accepted message, in order
    DELETE /sandbox/messages                     forget them
    GET    /sandbox/faults                       the faults in force, by provider
    PUT    /sandbox/faults/{provider}            {"error_rate": 0.5, "error_code": 503, "latency_ms": {"p50": 80,
                                                  "p99": 400}, "retry_after": 2, "outage_s": 30,
                                                  "undelivered_rate": 0.1, "callback_delay_ms": 500}
    DELETE /sandbox/faults/{provider}
    GET    /sandbox/callbacks                    callbacks delivered and failed
    GET    /sandbox/sendgrid/public-key          {"public_key": base64 DER} to verify SendGrid events

Faults are described in ``service.sandbox.faults``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from service.logs import AccessLog
from service.sandbox import infobip, sendgrid, twilio
from service.sandbox.core import PROVIDERS, STATE, RecordedMessage, SandboxState, count_segments
from service.sandbox.faults import Fault

__all__ = [
    "STATE",
    "Fault",
    "RecordedMessage",
    "SandboxState",
    "count_segments",
    "create_app",
    "run_sandbox",
]

VALID_CODES: Final = {
    "twilio": twilio.valid_error_code,
    "infobip": infobip.valid_error_code,
    "sendgrid": sendgrid.valid_error_code,
}


def _provider(request: web.Request) -> str:
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        raise web.HTTPNotFound(text=f"unknown provider; one of {', '.join(PROVIDERS)}")
    return provider


async def list_messages(request: web.Request) -> web.Response:
    provider = request.query.get("provider") or None
    if provider is not None and provider not in PROVIDERS:
        return web.json_response({"error": f"provider must be one of {', '.join(PROVIDERS)}"}, status=400)
    return web.json_response([m.to_json() for m in request.app[STATE].listed(provider)])


async def clear_messages(request: web.Request) -> web.Response:
    request.app[STATE].clear()
    return web.Response(status=204)


async def get_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    now = state.monotonic()
    return web.json_response({p: f.to_json(now) for p, f in state.faults.items()})


async def put_fault(request: web.Request) -> web.Response:
    provider, state = _provider(request), request.app[STATE]
    now = state.monotonic()
    try:
        fault = Fault.from_json(await request.json(), now=now, valid_code=VALID_CODES[provider])
    except ValueError as exc:  # also a body that is not JSON
        return web.json_response({"error": str(exc)}, status=400)
    state.set_fault(provider, fault)
    return web.json_response(fault.to_json(now))


async def clear_fault(request: web.Request) -> web.Response:
    request.app[STATE].set_fault(_provider(request), None)
    return web.Response(status=204)


async def list_callbacks(request: web.Request) -> web.Response:
    callbacks = request.app[STATE].callbacks
    body: dict[str, Any] = {
        "pending": callbacks.pending,
        "sent": [c.to_json() for c in callbacks.sent],
        "failed": [c.to_json() for c in callbacks.failures],
    }
    return web.json_response(body)


async def sendgrid_public_key(request: web.Request) -> web.Response:
    return web.json_response({"public_key": request.app[STATE].sendgrid_signer.public_key_b64})


async def _close_callbacks(app: web.Application) -> None:
    await app[STATE].callbacks.aclose()


def create_app(state: SandboxState, *, middlewares: Iterable[Middleware] = ()) -> web.Application:
    """The sandbox app; ``middlewares`` let a test watch every exchange."""
    app = web.Application(middlewares=list(middlewares))
    app[STATE] = state
    twilio.add_routes(app)
    infobip.add_routes(app)
    sendgrid.add_routes(app)
    app.router.add_get("/sandbox/messages", list_messages)
    app.router.add_delete("/sandbox/messages", clear_messages)
    app.router.add_get("/sandbox/faults", get_faults)
    app.router.add_put("/sandbox/faults/{provider}", put_fault)
    app.router.add_delete("/sandbox/faults/{provider}", clear_fault)
    app.router.add_get("/sandbox/callbacks", list_callbacks)
    app.router.add_get("/sandbox/sendgrid/public-key", sendgrid_public_key)
    app.on_cleanup.append(_close_callbacks)
    return app


async def run_sandbox(host: str, port: int, state: SandboxState) -> web.AppRunner:
    """Serve the sandbox; the caller owns the runner (``await runner.cleanup()``).

    With ``port=0`` the bound port is ``runner.addresses[0][1]``.
    """
    runner = web.AppRunner(create_app(state), access_log_class=AccessLog)  # no header is logged
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
