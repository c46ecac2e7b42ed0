"""SendGridClient against the real sandbox on loopback, and SendGrid's Signed Event Webhook."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from service.domain.ports import EmailMessage, EmailSender, SendAccepted
from service.sandbox.serve import Fault, SandboxState
from service.send.providers.sendgrid import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventWebhookSigner,
    SendGridClient,
    verify_sendgrid_signature,
)
from tests.provider_servers import serve
from tests.unit.sandbox.receiver import Receiver
from tests.unit.send.providers.conftest import SENDGRID_KEY
from tests.unit.send.providers.helpers import assert_no_secrets, free_port

TO = "chan.tai.man@example.com.hk"
MESSAGE = EmailMessage(
    subject="Your bike has arrived in Hong Kong",
    text="Dear Chan Tai Man, order HK-4711 is at our warehouse.",
    html="<p>Dear Chan Tai Man, order HK-4711 is at our warehouse.</p>",
)
REF = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a.2"
NOW = 1_741_064_767.0
MAIL_SEND = "/v3/mail/send"  # the route a stand-in serves

MakeClient = Callable[..., SendGridClient]


@pytest.fixture
def make_client(session: aiohttp.ClientSession, sandbox: tuple[SandboxState, str]) -> MakeClient:
    def make(**overrides: Any) -> SendGridClient:
        kwargs: dict[str, Any] = {
            "base_url": sandbox[1],
            "api_key": SENDGRID_KEY,
            "sender_email": "notifications@example.com",
            "sender_name": "Specialized Hong Kong",
        }
        kwargs.update(overrides)
        return SendGridClient(session, **kwargs)

    return make


def assert_private(exc: BaseException) -> None:
    assert_no_secrets(exc, (TO, MESSAGE.subject, MESSAGE.text, "Chan Tai Man", SENDGRID_KEY))


# --- sending --------------------------------------------------------------------------------------------


async def test_send_returns_x_message_id_queued(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    client: EmailSender = make_client()
    accepted = await client.send_email(TO, MESSAGE, reference=REF)

    assert client.name == "sendgrid"
    assert accepted.provider == "sendgrid"
    assert accepted.status == "queued"
    assert len(accepted.message_id) == 22
    [recorded] = sandbox[0].messages
    assert (
        recorded.provider,
        recorded.sid,
        recorded.to,
        recorded.body,
        recorded.subject,
        recorded.reference,
    ) == (
        "sendgrid",
        accepted.message_id,
        TO,
        MESSAGE.text,
        MESSAGE.subject,
        REF,
    )


async def test_request_follows_the_mail_send_spec(session: aiohttp.ClientSession) -> None:
    seen: list[tuple[dict[str, str], Any]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.json()))
        return web.Response(status=202, headers={"X-Message-Id": "abc"})

    async with serve(capture, method="POST", path=MAIL_SEND) as url:
        client = SendGridClient(
            session, base_url=url, api_key=SENDGRID_KEY, sender_email="n@example.com", sender_name="N"
        )
        assert await client.send_email(TO, MESSAGE, reference=REF) == SendAccepted(
            "sendgrid", "abc", "queued"
        )
        await client.send_email(TO, EmailMessage("s", "text only", ""), reference=REF)

    (headers, payload), (_, text_only) = seen
    assert headers["Authorization"] == f"Bearer {SENDGRID_KEY}"
    assert headers["Content-Type"] == "application/json"
    assert payload == {
        "personalizations": [{"to": [{"email": TO}], "custom_args": {"ref": REF}}],
        "from": {"email": "n@example.com", "name": "N"},
        "subject": MESSAGE.subject,
        "content": [
            {"type": "text/plain", "value": MESSAGE.text},
            {"type": "text/html", "value": MESSAGE.html},
        ],
    }
    assert text_only["content"] == [{"type": "text/plain", "value": "text only"}]


async def test_missing_message_id_is_still_accepted(session: aiohttp.ClientSession) -> None:
    async def accepted(_: web.Request) -> web.Response:
        return web.Response(status=202)

    async with serve(accepted, method="POST", path=MAIL_SEND) as url:
        client = SendGridClient(
            session, base_url=url, api_key="k", sender_email="n@example.com", sender_name="N"
        )
        assert await client.send_email(TO, MESSAGE, reference=REF) == SendAccepted("sendgrid", "", "queued")


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["not-an-address", "chan@", "chan tai man@example.com"])
async def test_invalid_address_is_invalid_recipient(make_client: MakeClient, address: str) -> None:
    with pytest.raises(InvalidRecipient) as info:
        await make_client().send_email(address, MESSAGE, reference=REF)
    assert (info.value.provider, info.value.code) == ("sendgrid", "400")
    assert_no_secrets(info.value, (address,))
    assert_private(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, EmailMessage("", "text", "")),  # no subject
        ({}, EmailMessage("subject", "", "")),  # no content
        ({"sender_email": "not-an-address"}, MESSAGE),
    ],
)
async def test_other_bad_requests_are_provider_rejected(
    make_client: MakeClient, overrides: dict[str, str], message: EmailMessage
) -> None:
    with pytest.raises(ProviderRejected) as info:
        await make_client(**overrides).send_email(TO, message, reference=REF)
    assert type(info.value) is ProviderRejected
    assert info.value.code == "400"


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [
        (400, ProviderRejected),
        (401, ProviderRejected),
        (403, ProviderRejected),
        (404, ProviderRejected),
        (413, ContentRejected),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
    ],
)
async def test_http_fault_maps_to_error_class(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], error_code: int, expected: type[ProviderError]
) -> None:
    sandbox[0].faults["sendgrid"] = Fault(1.0, error_code)
    with pytest.raises(ProviderError) as info:
        await make_client().send_email(TO, MESSAGE, reference=REF)
    assert type(info.value) is expected
    assert info.value.code == str(error_code)
    assert sandbox[0].messages == []
    assert_private(info.value)


async def test_wrong_key_is_provider_rejected(make_client: MakeClient) -> None:
    client = make_client(api_key="SG.wrong")
    assert "SG.wrong" not in repr(client)
    with pytest.raises(ProviderRejected) as info:
        await client.send_email(TO, MESSAGE, reference=REF)
    assert info.value.code == "401"


async def test_rate_limit_reset_becomes_retry_after(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    """SendGrid says when the window resets (X-RateLimit-Reset, epoch seconds), not Retry-After."""
    state = sandbox[0]
    state.faults["sendgrid"] = Fault(1.0, 429, retry_after=30)
    reset = int(state.now().timestamp()) + 30
    with pytest.raises(RateLimited) as info:
        await make_client(clock=lambda: reset - 12.5).send_email(TO, MESSAGE, reference=REF)
    assert info.value.retry_after == 12.5


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "7"}, 7.0), ({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0), ({}, None)],
)
async def test_retry_after_header_forms(
    session: aiohttp.ClientSession, headers: dict[str, str], retry_after: float | None
) -> None:
    async def limited(_: web.Request) -> web.Response:
        return web.json_response(
            {"errors": [{"message": "too many requests", "field": None}]}, status=429, headers=headers
        )

    async with serve(limited, method="POST", path=MAIL_SEND) as url:
        client = SendGridClient(
            session,
            base_url=url,
            api_key="k",
            sender_email="n@example.com",
            sender_name="N",
            clock=lambda: NOW,
        )
        with pytest.raises(RateLimited) as info:
            await client.send_email(TO, MESSAGE, reference=REF)
    assert info.value.retry_after == retry_after


async def test_outage_timeout_and_refusal_are_provider_unavailable(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    state = sandbox[0]
    state.faults["sendgrid"] = Fault(outage_until=state.monotonic() + 60)
    with pytest.raises(ProviderUnavailable) as outage:
        await make_client().send_email(TO, MESSAGE, reference=REF)
    assert outage.value.code == "503"

    state.faults["sendgrid"] = Fault(latency_ms=300)
    with pytest.raises(ProviderUnavailable) as slow:
        await make_client(timeout_s=0.05).send_email(TO, MESSAGE, reference=REF)
    assert slow.value.code == "timeout"

    with pytest.raises(ProviderUnavailable) as refused:
        await make_client(base_url=f"http://127.0.0.1:{free_port()}").send_email(TO, MESSAGE, reference=REF)
    assert refused.value.code == "network"
    for info in (outage, slow, refused):
        assert info.value.ambiguous
        assert_private(info.value)


# --- Signed Event Webhook -------------------------------------------------------------------------------


def test_signer_and_verifier_agree() -> None:
    signer = EventWebhookSigner()
    payload, timestamp = b'[{"event":"delivered","ref":"x.1"}]', "1741064767"
    signature = signer.sign(payload, timestamp)
    assert verify_sendgrid_signature(signer.public_key_b64, payload, signature, timestamp)
    assert signer.headers(payload, timestamp)[TIMESTAMP_HEADER] == timestamp


def test_verifier_accepts_an_independently_made_signature() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    payload, timestamp = json.dumps([{"event": "bounce"}]).encode(), "1741064800"
    signature = base64.b64encode(key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode()
    assert verify_sendgrid_signature(public, payload, signature, timestamp)


def test_official_sdk_verifies_the_signers_signatures() -> None:
    from sendgrid.helpers.eventwebhook import EventWebhook

    signer = EventWebhookSigner()
    sdk = EventWebhook(signer.public_key_b64)
    payload, timestamp = '[{"email":"a@example.com","event":"processed"}]', "1741064767"
    assert sdk.verify_signature(payload, signer.sign(payload.encode(), timestamp), timestamp)
    assert not sdk.verify_signature(payload + " ", signer.sign(payload.encode(), timestamp), timestamp)


def _other_public_keys() -> list[str]:
    edwards = ed25519.Ed25519PrivateKey.generate()
    p384 = ec.generate_private_key(ec.SECP384R1())
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return [
        base64.b64encode(edwards.public_key().public_bytes(*der)).decode(),
        base64.b64encode(p384.public_key().public_bytes(*der)).decode(),
        EventWebhookSigner().public_key_b64,
        "not base64!",
        base64.b64encode(b"not a key").decode(),
    ]


def test_verifier_rejects_tampering_and_garbage() -> None:
    signer = EventWebhookSigner()
    payload, timestamp = b'[{"event":"delivered","ref":"x.1"}]', "1741064767"
    signature = signer.sign(payload, timestamp)
    key = signer.public_key_b64
    assert not verify_sendgrid_signature(key, payload.replace(b"delivered", b"bounce"), signature, timestamp)
    assert not verify_sendgrid_signature(key, payload, signature, "1741064768")
    assert not verify_sendgrid_signature(key, payload, signer.sign(b"other", timestamp), timestamp)
    assert not verify_sendgrid_signature(key, payload, "not base64!", timestamp)
    assert not verify_sendgrid_signature(key, payload, base64.b64encode(b"junk").decode(), timestamp)
    assert not verify_sendgrid_signature(key, payload, "", timestamp)
    for other in _other_public_keys():
        assert not verify_sendgrid_signature(other, payload, signature, timestamp)
    assert "PRIVATE" not in repr(signer)


@pytest.mark.parametrize("bounced", [False, True])
async def test_events_arrive_signed_with_the_reference(
    make_client: MakeClient,
    sandbox: tuple[SandboxState, str],
    receiver: Receiver,
    session: aiohttp.ClientSession,
    bounced: bool,
) -> None:
    state, base_url = sandbox
    state.rng = random.Random(5)
    state.sendgrid_event_webhook_url = f"{receiver.base_url}/callbacks/sendgrid/events"
    state.faults["sendgrid"] = Fault(undelivered_rate=1.0 if bounced else 0.0)
    accepted = await make_client().send_email(TO, MESSAGE, reference=REF)
    await state.callbacks.drain()
    async with session.get(f"{base_url}/sandbox/sendgrid/public-key") as resp:
        public_key = (await resp.json())["public_key"]

    processed, outcome = receiver.received
    for post in (processed, outcome):
        signature, timestamp = post.headers[SIGNATURE_HEADER], post.headers[TIMESTAMP_HEADER]
        assert verify_sendgrid_signature(public_key, post.body, signature, timestamp)
        assert not verify_sendgrid_signature(
            public_key, post.body.replace(b"}]", b', "x": 1}]'), signature, timestamp
        )
    [first] = processed.json()
    [last] = outcome.json()
    assert first["event"] == "processed"
    assert last["event"] == ("bounce" if bounced else "delivered")
    for event in (first, last):
        assert (event["email"], event["ref"]) == (TO, REF)
        assert event["sg_message_id"].startswith(accepted.message_id + ".")
        assert isinstance(event["timestamp"], int)
        assert event["sg_event_id"]
    if bounced:
        assert last["type"] in {"bounce", "blocked"}
    assert state.callbacks.failures == []
