"""Callbacks on the real stack (the service, Kafka, PostgreSQL, the sandbox over HTTP) against
someone who knows what is public: the sandbox's default secrets, an order id and its milestone."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from service.app import Service
from service.domain.errors import ConfigError
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.sandbox.serve import Fault, SandboxState
from service.send.providers.twilio import twilio_signature
from service.settings import SANDBOX_SECRETS, Settings
from tests.integration.helpers import event, produce, read_decisions, read_topic, wait_until
from tests.provider_servers import sandbox as serve_sandbox

pytestmark = pytest.mark.integration

PUBLIC = "https://notifier.invalid"  # what providers would call in production (never resolves)
REAL = {
    "twilio_auth_token": "prod-twilio-token-8f2c",
    "infobip_api_key": "prod-infobip-key-51aa",
    "infobip_webhook_password": "prod-infobip-hook-77d0",
    "sendgrid_api_key": "prod-sendgrid-key-0b9e",
}


def metric(service: Service, name: str, **labels: str) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_until(lambda: service.http_port is not None or task.done(), what="the service to start")
        if task.done():
            task.result()
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest_asyncio.fixture
async def production(settings: Settings) -> AsyncIterator[tuple[Settings, SandboxState]]:
    """A service configured as in production: its own secrets, public callback and page URLs on
    the internet. Its providers are a sandbox that knows those secrets (delivery reports held
    back, so that only the test's requests arrive)."""
    state = SandboxState(
        account_sid=settings.twilio_account_sid,
        auth_token=REAL["twilio_auth_token"],
        infobip_api_key=REAL["infobip_api_key"],
        infobip_webhook_password=REAL["infobip_webhook_password"],
        sendgrid_api_key=REAL["sendgrid_api_key"],
    )
    state.set_fault("twilio", Fault(callback_delay_ms=60_000))
    async with serve_sandbox(state) as sandbox:
        s = settings.model_copy(
            update={
                **{k: type(getattr(settings, k))(v) for k, v in REAL.items()},
                "twilio_base_url": sandbox,
                "infobip_base_url": sandbox,
                "sendgrid_base_url": sandbox,
                "callback_base_url": PUBLIC,
                "public_base_url": "https://n.invalid",
            }
        )
        yield s, state
        await state.callbacks.aclose(timeout_s=0)  # the held-back reports: cancelled, not waited for


async def row(s: Settings, order: str) -> asyncpg.Record:
    conn = await asyncpg.connect(s.database_url)
    try:
        found = await conn.fetchrow(
            "SELECT state, provider, reference FROM notifications WHERE order_id = $1", order
        )
        assert found is not None
        return found
    finally:
        await conn.close()


async def consent_changes(s: Settings) -> int:
    conn = await asyncpg.connect(s.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM consent_events"))
    finally:
        await conn.close()


async def outcomes(s: Settings) -> list[str]:
    records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=2)
    return sorted(json.loads(r.value)["outcome"] for r in records)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_a_production_configured_service_with_the_sandbox_secrets_does_not_start(
    production: tuple[Settings, SandboxState],
) -> None:
    s, _ = production
    defaults = s.model_copy(
        update={"twilio_auth_token": type(s.twilio_auth_token)(SANDBOX_SECRETS["twilio_auth_token"])}
    )
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(Service(defaults).run(asyncio.Event()), 10)
    message = str(info.value)
    assert "NOTIFIER_TWILIO_AUTH_TOKEN" in message
    assert "NOTIFIER_CALLBACK_BASE_URL" in message  # what is not on loopback
    assert "NOTIFIER_INFOBIP_WEBHOOK_PASSWORD" not in message  # that one is set


async def test_callbacks_signed_with_the_public_default_secrets_are_refused_in_production(
    production: tuple[Settings, SandboxState],
) -> None:
    s, state = production
    service = Service(s)
    async with running(service):
        await produce(s.kafka_bootstrap_servers, s.input_topics[0], [event("IT-PRD", "READY_FOR_PICKUP")])
        await read_decisions(s.kafka_bootstrap_servers, s.receipts_topic, 1)
        ref = (await row(s, "IT-PRD"))["reference"]
        own = f"http://127.0.0.1:{service.http_port}"
        status_path = f"/callbacks/twilio/status?ref={ref}"
        status = {"MessageSid": "SMx", "MessageStatus": "undelivered", "ErrorCode": "30003"}
        stop = {"From": "+85291234567", "To": "+85230001234", "Body": "STOP", "MessageSid": "SMin"}
        public_token = SANDBOX_SECRETS["twilio_auth_token"]
        async with aiohttp.ClientSession() as http:
            for path, form in ((status_path, status), ("/callbacks/twilio/inbound", stop)):
                signature = twilio_signature(public_token, f"{PUBLIC}{path}", form)
                async with http.post(
                    f"{own}{path}", data=form, headers={"X-Twilio-Signature": signature}
                ) as r:
                    assert r.status == 403
            report = {"results": [{"callbackData": ref, "status": {"groupName": "UNDELIVERABLE"}}]}
            headers = basic(s.infobip_webhook_user, SANDBOX_SECRETS["infobip_webhook_password"])
            async with http.post(f"{own}/callbacks/infobip/reports", json=report, headers=headers) as r:
                assert r.status == 403
        assert metric(service, "notifier_callbacks_total", provider="twilio", result="forged") == 2
        assert metric(service, "notifier_callbacks_total", provider="infobip", result="forged") == 1
    assert (await row(s, "IT-PRD"))["state"] == "sent"
    assert state.listed("sendgrid") == []  # no fallback email
    assert await consent_changes(s) == 0  # no opt-out recorded
    assert await outcomes(s) == ["sent"]


async def test_references_cannot_be_derived_from_the_order_id_and_milestone(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    # On the local stack the webhook secrets are public (the sandbox's): the reference is then what
    # stands between someone who knows an order number and its notification.
    state, _ = sandbox
    state.set_fault("twilio", Fault(callback_delay_ms=60_000))
    service = Service(settings)
    async with running(service):
        await produce(
            settings.kafka_bootstrap_servers, settings.input_topics[0], [event("IT-REF", "READY_FOR_PICKUP")]
        )
        await read_decisions(settings.kafka_bootstrap_servers, settings.receipts_topic, 1)
        sent = await row(settings, "IT-REF")
        public = notification_id("IT-REF", Milestone.READY_FOR_PICKUP).hex
        head, step, tag = sent["reference"].split(".")
        assert (head, len(tag)) == (public, 24)
        guesses = [f"{public}.{step}", f"{public}.{step}.{'0' * 24}", f"{public}.{step}.{public[:24]}"]
        own = f"http://127.0.0.1:{service.http_port}"
        webhook = basic(settings.infobip_webhook_user, settings.infobip_webhook_password.get_secret_value())
        async with aiohttp.ClientSession() as http:
            for guess in guesses:
                path = f"/callbacks/twilio/status?ref={guess}"
                form = {"MessageSid": "SMx", "MessageStatus": "undelivered", "ErrorCode": "30003"}
                signature = twilio_signature(
                    settings.twilio_auth_token.get_secret_value(), f"{settings.callback_base_url}{path}", form
                )
                async with http.post(
                    f"{own}{path}", data=form, headers={"X-Twilio-Signature": signature}
                ) as r:
                    assert r.status == 204  # authentic, but about no message of ours
            report = {
                "results": [{"callbackData": g, "status": {"groupName": "UNDELIVERABLE"}} for g in guesses]
            }
            async with http.post(f"{own}/callbacks/infobip/reports", json=report, headers=webhook) as r:
                assert r.status == 204
        assert metric(service, "notifier_callbacks_total", provider="twilio", result="bad_reference") == 3
        assert metric(service, "notifier_callbacks_total", provider="infobip", result="bad_reference") == 3
    assert (await row(settings, "IT-REF"))["state"] == "sent"
    assert state.listed("sendgrid") == []
    assert await outcomes(settings) == ["sent"]


async def test_a_report_from_a_provider_that_did_not_send_the_message_changes_nothing(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    state.set_fault("twilio", Fault(callback_delay_ms=60_000))
    service = Service(settings)
    async with running(service):
        await produce(
            settings.kafka_bootstrap_servers, settings.input_topics[0], [event("IT-XPR", "READY_FOR_PICKUP")]
        )
        await read_decisions(settings.kafka_bootstrap_servers, settings.receipts_topic, 1)
        sent = await row(settings, "IT-XPR")
        assert sent["provider"] == "twilio"
        own = f"http://127.0.0.1:{service.http_port}"
        webhook = basic(settings.infobip_webhook_user, settings.infobip_webhook_password.get_secret_value())
        report = {"results": [{"callbackData": sent["reference"], "status": {"groupName": "UNDELIVERABLE"}}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{own}/callbacks/infobip/reports", json=report, headers=webhook) as r:
                assert r.status == 204
            assert (
                metric(service, "notifier_callbacks_total", provider="infobip", result="wrong_provider") == 1
            )
            assert (await row(settings, "IT-XPR"))["state"] == "sent"
            assert state.listed("sendgrid") == []  # no fallback email
            assert await outcomes(settings) == ["sent"]
            # Twilio's own report about the same message is applied.
            path = f"/callbacks/twilio/status?ref={sent['reference']}"
            form = {"MessageSid": "SMx", "MessageStatus": "delivered"}
            signature = twilio_signature(
                settings.twilio_auth_token.get_secret_value(), f"{settings.callback_base_url}{path}", form
            )
            async with http.post(f"{own}{path}", data=form, headers={"X-Twilio-Signature": signature}) as r:
                assert r.status == 204
        assert metric(service, "notifier_callbacks_total", provider="twilio", result="delivered") == 1
    assert (await row(settings, "IT-XPR"))["state"] == "delivered"
