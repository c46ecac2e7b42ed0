"""Fixtures on the real stack: a fresh database and fresh topics per test, the sandbox, the service."""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from service.kafka.admin import ensure_topics
from service.privacy.crypto import Keyring
from service.sandbox.serve import SandboxState
from service.settings import Settings, load_settings
from tests.provider_servers import sandbox as serve_sandbox


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(account_sid="ACtest0000000000000000000000000000", auth_token="test-token")
    async with serve_sandbox(state) as url:
        yield state, url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest_asyncio.fixture
async def settings(kafka_bootstrap: str, database_url: str, sandbox: tuple[SandboxState, str]) -> Settings:
    """Settings for one service instance on fresh topics and database, every provider on the sandbox.

    The service's HTTP port is chosen up front so that providers' callbacks can reach it.
    """
    run = uuid.uuid4().hex[:8]
    state, base_url = sandbox
    port = free_port()
    own = f"http://127.0.0.1:{port}"
    state.sendgrid_event_webhook_url = f"{own}/callbacks/sendgrid/events"
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
        infobip_base_url=base_url,
        sendgrid_base_url=base_url,
        sendgrid_webhook_public_key=state.sendgrid_signer.public_key_b64,
        http_port=port,
        metrics_port=0,  # any free port: Service.metrics_port says which
        callback_base_url=own,
        public_base_url=own,
        pii_keys=Keyring.generate_spec("k1"),
        blind_index_key=random_key(),
        link_signing_key=random_key(),
        # fast failure handling for tests: short backoffs and open periods
        breaker_open_s=2.0,
        breaker_min_calls=5,
        breaker_window=10,
    )
    await ensure_topics(kafka_bootstrap, {s.input_topics[0]: 4, s.receipts_topic: 4, s.dead_letter_topic: 1})
    return s
