"""Every provider client is tested against the real sandbox over HTTP on loopback."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from service.sandbox.serve import SandboxState
from tests.provider_servers import sandbox as serve_sandbox
from tests.unit.sandbox.receiver import receiver  # noqa: F401  # a fixture, shared with the sandbox tests

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TOKEN = "tok-5f2b9c1d-secret"
INFOBIP_KEY = "ib-key-7c1e0f-secret"
SENDGRID_KEY = "SG.key-93ab51-secret"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(
        ACCOUNT_SID,
        TOKEN,
        infobip_api_key=INFOBIP_KEY,
        sendgrid_api_key=SENDGRID_KEY,
        rng=random.Random(7),
    )
    async with serve_sandbox(state) as url:
        yield state, url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
