"""Requests our clients send and responses the sandbox gives, checked against the providers' published
OpenAPI documents (``tests/fixtures/provider-specs``, excerpts kept exactly as published) with openapi-core.

Two deliberate allowances, both made in memory and explained where they are made:
- Twilio's ``DateSent``/``DateSent<``/``DateSent>`` are typed ``date-time``, yet Twilio's own examples
  in the same document (and its docs) use ``YYYY-MM-DD``, which is what we send.
- The excerpts document only success responses for Twilio (201/200) and 202/400/401/403/404/413/500
  for SendGrid, so other responses (Twilio's 4xx, SendGrid's 429) are checked by the other tests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from service.domain.errors import ProviderError
from service.domain.ports import EmailMessage
from service.sandbox.serve import Fault, SandboxState
from service.send.providers.sendgrid import SendGridClient
from service.send.providers.twilio import TwilioClient
from tests.provider_servers import sandbox
from tests.unit.send.providers.conftest import ACCOUNT_SID, SENDGRID_KEY, TOKEN

SPECS = Path(__file__).resolve().parents[3] / "fixtures" / "provider-specs"
NUMBER = "+85291234567"


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    response: bytes
    content_type: str

    def request(self, host: str) -> MockRequest:
        return MockRequest(
            host,
            self.method,
            self.path,
            args=self.query,
            headers=self.headers,
            data=self.body,
            content_type=self.headers.get("Content-Type", ""),
        )

    def reply(self) -> MockResponse:
        return MockResponse(self.response, self.status, content_type=self.content_type)


@pytest.fixture(scope="module")
def twilio_spec() -> OpenAPI:
    spec = json.loads((SPECS / "twilio-messages.openapi.json").read_text())
    spec = copy.deepcopy(spec)
    for parameter in spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]["parameters"]:
        if parameter["name"].startswith("DateSent"):
            # The document's own examples (readFullPage1: "DateSent>": "2008-01-02") break its
            # "date-time" format; Twilio documents YYYY-MM-DD, which is what we send.
            parameter["schema"].pop("format")
    return OpenAPI.from_dict(spec)


@pytest.fixture(scope="module")
def sendgrid_spec() -> OpenAPI:
    """The mail_send excerpt is a path item with relative file references: wrap it in a document."""
    base = SPECS / "sendgrid"
    document = {
        "openapi": "3.0.3",
        "info": {"title": "SendGrid v3 mail/send (excerpt)", "version": "3.0"},
        "servers": [{"url": "https://api.sendgrid.com"}],
        "paths": {"/v3/mail/send": {"$ref": "paths/mail_send/mail_send.json#/mail_send"}},
        "components": {"securitySchemes": {"Authorization": {"type": "http", "scheme": "bearer"}}},
    }
    return OpenAPI(SchemaPath.from_dict(document, base_uri=base.as_uri() + "/"))


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[SandboxState, str, list[Exchange]]]:
    """A sandbox whose every exchange is recorded, as it went over the wire."""
    exchanges: list[Exchange] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Any:
        body = await request.read()
        response = await handler(request)
        assert isinstance(response, web.Response)
        raw = response.body if isinstance(response.body, bytes) else b""
        exchanges.append(
            Exchange(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                response.status,
                raw,
                response.content_type,
            )
        )
        return response

    state = SandboxState(ACCOUNT_SID, TOKEN, sendgrid_api_key=SENDGRID_KEY)
    async with sandbox(state, middlewares=[record]) as url:
        yield state, url, exchanges


async def test_twilio_client_and_sandbox_speak_the_published_api(
    recorded: tuple[SandboxState, str, list[Exchange]], twilio_spec: OpenAPI
) -> None:
    state, base_url, exchanges = recorded
    async with aiohttp.ClientSession() as session:
        client = TwilioClient(
            session,
            base_url=base_url,
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender="+15005550006",
            status_callback="https://notifier.example/callbacks/twilio/status",
        )
        since = datetime.now(UTC)
        sent = [await client.send_sms(NUMBER, f"message {n} 👍", reference=f"ref.{n}") for n in range(3)]
        assert await client.find_sent(NUMBER, "message 0 👍", reference="ref.0", since=since) is not None
        await state.callbacks.drain()
        # a status look-up (a lost callback): GET Messages/{Sid}.json, the response read by the spec
        assert await client.delivery_status(sent[0].message_id, reference="ref.0") is not None
        with pytest.raises(ProviderError):
            await client.send_sms("85291234567", "no plus sign", reference="ref.9")
        # the sandbox's own pages, fetches and a Messaging Service send
        auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, TOKEN)}
        messages = f"{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        async with session.get(messages, params={"PageSize": "2"}, headers=auth) as resp:
            page = await resp.json()
        assert page["next_page_uri"]
        async with session.get(base_url + page["next_page_uri"], headers=auth) as resp:
            assert resp.status == 200
        async with session.get(base_url + page["messages"][0]["uri"], headers=auth) as resp:
            assert resp.status == 200
        form = {"To": NUMBER, "Body": "hi", "MessagingServiceSid": "MG" + "a" * 32}
        async with session.post(messages, data=form, headers=auth) as resp:
            assert resp.status == 201
    await state.callbacks.drain()

    checked = 0
    for exchange in exchanges:
        request = exchange.request("https://api.twilio.com")
        twilio_spec.validate_request(request)
        if exchange.status < 300:
            twilio_spec.validate_response(request, exchange.reply())
            checked += 1
    assert [e.method for e in exchanges].count("GET") == 5
    assert checked == len(exchanges) - 1  # all but the 400, which the excerpt does not document


async def test_sendgrid_client_and_sandbox_speak_the_published_api(
    recorded: tuple[SandboxState, str, list[Exchange]], sendgrid_spec: OpenAPI
) -> None:
    state, base_url, exchanges = recorded
    message = EmailMessage("Your bike has arrived", "Plain text", "<p>HTML</p>")
    async with aiohttp.ClientSession() as session:

        def client(**overrides: str) -> SendGridClient:
            kwargs = {
                "api_key": SENDGRID_KEY,
                "sender_email": "n@example.com",
                "sender_name": "N",
            } | overrides
            return SendGridClient(session, base_url=base_url, **kwargs)

        await client().send_email("a@example.com", message, reference="ref.1")
        await client().send_email("a@example.com", EmailMessage("text only", "Plain", ""), reference="ref.2")
        for address, overrides, subject in [
            ("not-an-address", {}, "s"),
            ("a@example.com", {}, ""),
            ("a@example.com", {"api_key": "wrong"}, "s"),
        ]:
            with pytest.raises(ProviderError):
                await client(**overrides).send_email(address, EmailMessage(subject, "t", ""), reference="r.0")
        for status in (403, 413, 500):
            state.faults["sendgrid"] = Fault(1.0, status)
            with pytest.raises(ProviderError):
                await client().send_email("a@example.com", message, reference="ref.3")

    statuses = []
    for exchange in exchanges:
        request = exchange.request("https://api.sendgrid.com")
        if exchange.status == 400:
            # the sandbox refused exactly what the published schema refuses (bad address, empty subject)
            with pytest.raises(Exception, match="body"):
                sendgrid_spec.validate_request(request)
        else:
            sendgrid_spec.validate_request(request)
        sendgrid_spec.validate_response(request, exchange.reply())
        statuses.append(exchange.status)
    assert statuses == [202, 202, 400, 400, 401, 403, 413, 500]


def test_the_specs_reject_what_they_should(twilio_spec: OpenAPI, sendgrid_spec: OpenAPI) -> None:
    """The validators are not vacuous: a response missing a field's type or a bad request fails."""
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    auth = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, TOKEN)}
    request = MockRequest(
        "https://api.twilio.com",
        "POST",
        path,
        headers=auth,
        data=b"To=%2B85291234567&Body=x",
        content_type="application/x-www-form-urlencoded",
    )
    twilio_spec.validate_request(request)
    with pytest.raises(Exception, match=r"status|Invalid"):
        twilio_spec.validate_response(
            request, MockResponse(json.dumps({"status": "teleported"}).encode(), 201)
        )
    no_from = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "subject": "s", "content": []}
    bad = MockRequest(
        "https://api.sendgrid.com",
        "POST",
        "/v3/mail/send",
        headers={"Authorization": "Bearer k"},
        data=json.dumps(no_from).encode(),
    )
    with pytest.raises(Exception, match=r"body|Invalid"):
        sendgrid_spec.validate_request(bad)
