"""Fixtures on the real stack: a fresh database and fresh topics per test, the sandbox, the service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from service.kafka.admin import ensure_topics
from service.sandbox.server import SandboxState, run_sandbox
from service.settings import Settings, load_settings


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(account_sid="ACtest0000000000000000000000000000", auth_token="test-token")
    runner = await run_sandbox("127.0.0.1", 0, state)
    port = runner.addresses[0][1]
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest_asyncio.fixture
async def settings(kafka_bootstrap: str, database_url: str, sandbox: tuple[SandboxState, str]) -> Settings:
    run = uuid.uuid4().hex[:8]
    state, base_url = sandbox
    s = load_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        input_topics=[f"it.{run}.shipment.status.v1"],
        receipts_topic=f"it.{run}.notification.receipts.v1",
        dead_letter_topic=f"it.{run}.shipment.status.v1.dlq",
        consumer_group=f"it-{run}",
        twilio_base_url=base_url,
        twilio_account_sid=state.account_sid,
        twilio_auth_token=state.auth_token,
        http_port=0,
    )
    await ensure_topics(kafka_bootstrap, {s.input_topics[0]: 4, s.receipts_topic: 4, s.dead_letter_topic: 1})
    return s
