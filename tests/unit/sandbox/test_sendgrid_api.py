"""The sandbox speaks SendGrid's v3 Mail Send API and Signed Event Webhook; the official SDK agrees."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.sandbox.sendgrid import MSG_CONTENT, MSG_FROM, MSG_SUBJECT, MSG_TO
from service.sandbox.serve import Fault, SandboxState, create_app, run_sandbox
from service.send.providers.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_sendgrid_signature
from tests.unit.sandbox.receiver import Receiver

KEY = "sandbox-sendgrid-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAIL: dict[str, Any] = {
    "personalizations": [
        {"to": [{"email": "a@example.com"}, {"email": "b@example.com"}], "custom_args": {"ref": "r.1"}}
    ],
    "from": {"email": "notifications@example.com", "name": "Specialized"},
    "subject": "Your bike has arrived",
    "content": [{"type": "text/plain", "value": "Plain"}, {"type": "text/html", "value": "<p>HTML</p>"}],
}


@pytest.fixture
def state() -> SandboxState:
    return SandboxState("AC" + "0" * 32, "t", rng=random.Random(0))


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(state), host="127.0.0.1")) as c:
        yield c


async def test_accepted_mail_is_202_with_a_message_id(
    client: TestClient[Any, Any], state: SandboxState
) -> None:
    resp = await client.post("/v3/mail/send", json=MAIL, headers=AUTH)
    assert resp.status == 202
    assert await resp.read() == b""
    message_id = resp.headers["X-Message-Id"]
    assert [(m.provider, m.sid, m.to, m.body, m.subject, m.reference) for m in state.messages] == [
        ("sendgrid", message_id, "a@example.com", "Plain", "Your bike has arrived", "r.1"),
        ("sendgrid", message_id, "b@example.com", "Plain", "Your bike has arrived", "r.1"),
    ]


def without(path: str) -> dict[str, Any]:
    mail = json.loads(json.dumps(MAIL))
    *parents, last = path.split(".")
    target = mail
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    del target[int(last) if last.isdigit() else last]
    return mail


def changed(path: str, value: Any) -> dict[str, Any]:
    mail = json.loads(json.dumps(MAIL))
    *parents, last = path.split(".")
    target = mail
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    return mail


@pytest.mark.parametrize(
    ("mail", "errors"),
    [
        (without("personalizations"), [("personalizations", "The personalizations field is required and must have at least one personalization.")]),
        (changed("personalizations", []), [("personalizations", "The personalizations field is required and must have at least one personalization.")]),
        (without("personalizations.0.to"), [("personalizations.0.to", MSG_TO)]),
        (changed("personalizations.0.to.1.email", "b@"), [("personalizations.0.to.1.email", "Does not contain a valid address.")]),
        (changed("personalizations.0.custom_args", {"ref": 1}), [("personalizations.0.custom_args", "custom_args values must be strings.")]),
        (without("from"), [("from.email", MSG_FROM)]),
        (changed("from", {"email": "nobody"}), [("from.email", "The from email does not contain a valid address.")]),
        (without("subject"), [("subject", MSG_SUBJECT)]),
        (without("content"), [("content", MSG_CONTENT)]),
        (changed("content.1.value", ""), [("content.1.value", "The content value must be a string at least one character in length.")]),
        (changed("content", MAIL["content"][::-1]), [("content", "If present, text/plain content must be first, followed by text/html, followed by any other content.")]),
        (changed("subject", "") | {"content": []}, [("subject", MSG_SUBJECT), ("content", MSG_CONTENT)]),
    ],
)  # fmt: skip
async def test_invalid_mail_is_400_with_every_error(
    client: TestClient[Any, Any], state: SandboxState, mail: Any, errors: list[tuple[str, str]]
) -> None:
    resp = await client.post("/v3/mail/send", json=mail, headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {"errors": [{"message": m, "field": f} for f, m in errors]}
    assert state.messages == []


async def test_subject_may_come_from_every_personalization(client: TestClient[Any, Any]) -> None:
    mail = without("subject")
    mail["personalizations"][0]["subject"] = "Per person"
    assert (await client.post("/v3/mail/send", json=mail, headers=AUTH)).status == 202


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
async def test_bad_key_is_401(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    resp = await client.post("/v3/mail/send", json=MAIL, headers=headers or {"X": "1"})
    assert resp.status == 401
    assert (await resp.json())["errors"][0]["field"] is None


async def test_not_json_is_400(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v3/mail/send", data="{", headers=AUTH)
    assert (resp.status, await resp.json()) == (400, {"errors": [{"message": "Bad Request", "field": None}]})


async def test_rate_limit_fault_sets_sendgrids_headers(
    client: TestClient[Any, Any], state: SandboxState
) -> None:
    state.set_fault("sendgrid", Fault(1.0, 429, retry_after=20))
    resp = await client.post("/v3/mail/send", json=MAIL, headers=AUTH)
    assert resp.status == 429
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    assert int(resp.headers["X-RateLimit-Reset"]) == pytest.approx(state.now().timestamp() + 20, abs=2)


async def test_public_key_endpoints(client: TestClient[Any, Any], state: SandboxState) -> None:
    ours = await (await client.get("/sandbox/sendgrid/public-key")).json()
    theirs = await (await client.get("/v3/user/webhooks/event/settings/signed", headers=AUTH)).json()
    assert ours["public_key"] == theirs["public_key"] == state.sendgrid_signer.public_key_b64
    assert theirs["enabled"] is True
    assert (await client.get("/v3/user/webhooks/event/settings/signed")).status == 401


async def test_official_sdk_sends_and_its_verifier_accepts_the_events(receiver: Receiver) -> None:
    import sendgrid
    from python_http_client.exceptions import UnauthorizedError
    from sendgrid.helpers.eventwebhook import EventWebhook
    from sendgrid.helpers.mail import CustomArg, Mail

    state = SandboxState(
        "AC" + "0" * 32, "t", sendgrid_event_webhook_url=f"{receiver.base_url}/events", rng=random.Random(2)
    )
    state.set_fault("sendgrid", Fault(undelivered_rate=0.5))
    runner = await run_sandbox("127.0.0.1", 0, state)
    host = f"http://127.0.0.1:{runner.addresses[0][1]}"

    def use_sdk() -> tuple[Any, int]:
        mail = Mail(
            from_email="notifications@example.com",
            to_emails=["a@example.com", "b@example.com"],
            subject="Your bike has arrived",
            plain_text_content="Plain",
            html_content="<p>HTML</p>",
            is_multiple=True,
        )
        mail.custom_arg = CustomArg("ref", "sdk.1")
        response = sendgrid.SendGridAPIClient(api_key=KEY, host=host).send(mail)
        try:
            sendgrid.SendGridAPIClient(api_key="wrong", host=host).send(mail)
        except UnauthorizedError as exc:
            return response, exc.status_code
        raise AssertionError("a wrong key was accepted")

    try:
        response, bad_status = await asyncio.to_thread(use_sdk)
        await state.callbacks.drain()
    finally:
        await runner.cleanup()

    assert response.status_code == 202
    message_id = response.headers["X-Message-Id"]
    assert bad_status == 401
    verifier = EventWebhook(state.sendgrid_signer.public_key_b64)
    events = []
    for post in receiver.received:
        signature, timestamp = post.headers[SIGNATURE_HEADER], post.headers[TIMESTAMP_HEADER]
        assert verifier.verify_signature(post.body.decode(), signature, timestamp)
        assert verify_sendgrid_signature(
            state.sendgrid_signer.public_key_b64, post.body, signature, timestamp
        )
        events += post.json()
    assert sorted((e["email"], e["event"]) for e in events if e["event"] == "processed") == [
        ("a@example.com", "processed"),
        ("b@example.com", "processed"),
    ]
    assert {e["event"] for e in events} <= {"processed", "delivered", "bounce"}
    assert len(events) == 4
    assert {e["ref"] for e in events} == {"sdk.1"}  # the SDK's message-wide custom_args, flattened
    assert all(e["sg_message_id"].startswith(message_id + ".") for e in events)
