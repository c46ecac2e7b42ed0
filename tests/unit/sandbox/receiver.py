"""A stand-in for the service's callback endpoints: a loopback server that records every POST."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from tests.provider_servers import serve


@dataclass(frozen=True)
class Received:
    url: str  # as the sender addressed it: base URL + path + query
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records each POST and answers ``status`` (204 unless a test changes it)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 204
        self.base_url = ""
        self._server = contextlib.AsyncExitStack()

    async def start(self) -> str:
        self.base_url = await self._server.enter_async_context(serve(self._handle, method="POST"))
        return self.base_url

    async def stop(self) -> None:
        await self._server.aclose()

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(
            Received(self.base_url + request.path_qs, request.path, dict(request.headers), body)
        )
        return web.Response(status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()
