"""Loopback HTTP servers that stand in for a provider in tests (and, in
tests/unit/sandbox/receiver.py, for the service's callback endpoints).

Most tests talk to the sandbox (``service.sandbox.serve``), which speaks each provider's wire
format and takes faults (``SandboxState.set_fault``): ``sandbox`` serves it. A test that needs an
answer no sandbox fault gives (a garbled body, a listing that never ends, an error quoting the
recipient) serves its own handler with ``serve``, or a fixed answer that records what it got with
``Canned``. Each yields its base URL and stops its server on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from service.sandbox.serve import SandboxState, create_app, run_sandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, method: str = "*", path: str = "/{tail:.*}") -> AsyncIterator[str]:
    """Answer requests to ``method`` ``path`` (any, by default) with ``handler``."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    async with running(app) as url:
        yield url


@contextlib.asynccontextmanager
async def sandbox(state: SandboxState, *, middlewares: Iterable[Middleware] = ()) -> AsyncIterator[str]:
    """The sandbox over ``state`` (``middlewares`` let a test watch every exchange)."""
    if middlewares:
        async with running(create_app(state, middlewares=middlewares)) as url:
            yield url
        return
    runner = await run_sandbox("127.0.0.1", 0, state)  # its access log shows no header
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()  # waits for the callbacks it still owes


class Canned:
    """A provider answering every request with one JSON response, recording what it got as
    (method, path and query, headers, JSON body of a POST)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json() if request.method == "POST" else None
        self.requests.append((request.method, request.path_qs, dict(request.headers), payload))
        return web.json_response(self.body, status=self.status, headers=self.headers)
