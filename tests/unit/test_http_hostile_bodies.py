"""Hostile bodies on the real aiohttp application of the public listener: each gets 400 (or 403 /
413), never a 500 with a traceback, and changes nothing. Unexpected errors answer a plain 500."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from service.http.callbacks import add_callback_routes
from service.http.server import create_public_app
from service.report.delivery_reports import DeliveryReports
from service.send.providers.sendgrid import EventWebhookSigner
from service.send.providers.twilio import twilio_signature
from service.settings import load_settings
from tests.builders import event
from tests.unit.pipeline.test_driver import Harness

BASE = "https://notifier.example.com"
TOKEN = "twilio-secret"
HOOK = ("infobip", "hook-secret")
FORM = "application/x-www-form-urlencoded"
NOW = 1_800_000_000.0


@pytest.fixture
async def rig() -> AsyncIterator[
    tuple[TestClient[web.Request, web.Application], Harness, EventWebhookSigner]
]:
    h = Harness()
    await h.feed(event("A", "READY_FOR_PICKUP"))
    signer = EventWebhookSigner()
    s = load_settings(
        callback_base_url=BASE,
        twilio_auth_token=TOKEN,
        infobip_webhook_user=HOOK[0],
        infobip_webhook_password=HOOK[1],
        sendgrid_webhook_public_key=signer.public_key_b64,
        http_max_body_bytes=64 * 1024,
    )
    reports = DeliveryReports(
        store=h.store,
        receipts=h.stages.receipts,
        sender=h.stages.sender,
        keyring=h.keyring,
        metrics=h.metrics,
        references=h.references,
    )
    consent_calls: list[tuple[str, bool, str]] = []

    async def consent(phone: str, out: bool, source: str) -> int:
        consent_calls.append((phone, out, source))
        return 1

    app = create_public_app(s.http_max_body_bytes)
    add_callback_routes(app, s, reports, consent, clock=lambda: NOW)

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("detail with +85291234567 in it")

    async def login_like(request: web.Request) -> web.Response:  # any route that reads a form
        form = await request.post()
        return web.json_response({"fields": len(form)})

    app.router.add_get("/boom", boom)
    app.router.add_post("/form", login_like)
    async with TestClient(TestServer(app)) as client:
        yield client, h, signer
    assert consent_calls == []


Rig = tuple[TestClient[web.Request, web.Application], Harness, EventWebhookSigner]


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{HOOK[0]}:{HOOK[1]}".encode()).decode()}


def unchanged(h: Harness) -> None:
    assert len(h.receipts.published) == 1  # only the sent receipt
    assert h.email.sent == []


@pytest.mark.parametrize("path", ["/callbacks/twilio/status?ref=x", "/callbacks/twilio/inbound"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"MessageStatus=undelivered&Body=\xff\xfe", FORM),  # raw bytes that are not UTF-8
        (b"MessageStatus=undelivered&Body=%ff%fe", FORM),  # percent-escaped bytes that are not UTF-8
        (b"a=1", f"{FORM}; charset=no-such-charset"),
        (b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x"),  # not Twilio's form
        (b"&".join(b"f%d=1" % i for i in range(500)), FORM),  # more fields than any Twilio callback
    ],
)
async def test_twilio_routes_answer_400_to_an_unreadable_form(
    rig: Rig, path: str, body: bytes, content_type: str
) -> None:
    client, h, _ = rig
    reply = await client.post(
        path, data=body, headers={"Content-Type": content_type, "X-Twilio-Signature": "x"}
    )
    text = await reply.text()
    # An unknown charset is read as UTF-8 (Twilio sends UTF-8) and then fails the signature.
    assert reply.status == (403 if "no-such-charset" in content_type else 400), text
    assert "Traceback" not in text
    unchanged(h)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'{"results": [1]}',
        b'{"results": ["DELIVERED"]}',
        b'{"results": "DELIVERED"}',
        b'{"results": [{"status": "DELIVERED"}]}',
        b'{"results": [{"status": {"groupName": ["DELIVERED"]}}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "error": "x"}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "callbackData": {"a": 1}}]}',
        b'{"results": [\xff]}',
        b"[" * 20_000 + b"]" * 20_000,  # deeper than the JSON parser goes
        b"not json",
    ],
)
async def test_infobip_reports_answer_400_to_entries_that_are_not_reports(rig: Rig, body: bytes) -> None:
    client, h, _ = rig
    reply = await client.post("/callbacks/infobip/reports", data=body, headers=basic())
    assert reply.status == 400
    assert await reply.json() == {"error": "bad request"}
    unchanged(h)


async def test_an_infobip_request_with_one_bad_entry_applies_none(rig: Rig) -> None:
    client, h, _ = rig
    good = {"status": {"groupName": "UNDELIVERABLE"}, "callbackData": h.sender.references[0]}
    body = json.dumps({"results": [good, 7]}).encode()
    reply = await client.post("/callbacks/infobip/reports", data=body, headers=basic())
    assert reply.status == 400
    unchanged(h)


def signed(signer: EventWebhookSigner, body: bytes, at: float = NOW) -> dict[str, str]:
    return signer.headers(body, str(int(at)))


@pytest.mark.parametrize(
    "body",
    [
        b"[1]",
        b'{"event": "bounce"}',
        b'["bounce"]',
        b'[{"event": "bounce", "ref": "x"}]',  # no timestamp
        b'[{"event": "bounce", "timestamp": "soon"}]',
        b'[{"event": ["bounce"], "timestamp": 1800000000}]',
        b'[{"event": "bounce", "timestamp": 1800000000, "ref": 5}]',
        b'[{"event": "bounce", "timestamp": 1800000000, "type": {"a": 1}}]',
        b"[\xff]",
    ],
)
async def test_sendgrid_events_answer_400_to_entries_that_are_not_events(rig: Rig, body: bytes) -> None:
    client, h, signer = rig
    reply = await client.post("/callbacks/sendgrid/events", data=body, headers=signed(signer, body))
    assert reply.status == 400
    assert await reply.json() == {"error": "bad request"}
    unchanged(h)


@pytest.mark.parametrize("skew_s", [-301, 301, -86_400])
async def test_a_sendgrid_request_signed_too_long_ago_or_ahead_is_refused_as_a_replay(
    rig: Rig, skew_s: float
) -> None:
    client, h, signer = rig
    ref = h.sender.references[0]
    body = json.dumps([{"event": "bounce", "timestamp": int(NOW), "ref": ref}]).encode()
    reply = await client.post(
        "/callbacks/sendgrid/events", data=body, headers=signed(signer, body, NOW + skew_s)
    )
    assert reply.status == 403
    unchanged(h)


@pytest.mark.parametrize("age_s", [3 * 86_400 + 1, -301])
async def test_sendgrid_events_dated_outside_the_window_are_ignored_and_counted(
    rig: Rig, age_s: float
) -> None:
    client, h, signer = rig
    h.email.sent.clear()
    body = json.dumps([{"event": "delivered", "timestamp": int(NOW - age_s), "ref": "any"}]).encode()
    reply = await client.post("/callbacks/sendgrid/events", data=body, headers=signed(signer, body))
    assert reply.status == 204
    expired = h.metrics.registry.get_sample_value(
        "notifier_callbacks_total", {"provider": "sendgrid", "result": "expired"}
    )
    assert expired == 1
    assert h.metrics.registry.get_sample_value(
        "notifier_callbacks_total", {"provider": "sendgrid", "result": "bad_reference"}
    ) in (None, 0)  # never looked at


async def test_a_fresh_sendgrid_event_is_still_applied(rig: Rig) -> None:
    client, h, signer = rig
    body = json.dumps([{"event": "delivered", "timestamp": int(NOW - 60), "ref": "not-ours"}]).encode()
    reply = await client.post("/callbacks/sendgrid/events", data=body, headers=signed(signer, body))
    assert reply.status == 204
    assert (
        h.metrics.registry.get_sample_value(
            "notifier_callbacks_total", {"provider": "sendgrid", "result": "bad_reference"}
        )
        == 1
    )


async def test_a_wellformed_signed_twilio_form_is_read_and_reaches_the_reports(rig: Rig) -> None:
    client, h, _ = rig
    ref = h.sender.references[0]
    path = f"/callbacks/twilio/status?ref={ref}"
    form = {"MessageStatus": "undelivered", "MessageSid": "SM1", "ErrorCode": "30003", "Body": "取車"}
    signature = twilio_signature(TOKEN, f"{BASE}{path}", form)
    reply = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert reply.status == 204
    # Read and applied: here refused, because the fake provider "sms-a", not Twilio, sent it.
    assert (
        h.metrics.registry.get_sample_value(
            "notifier_callbacks_total", {"provider": "twilio", "result": "wrong_provider"}
        )
        == 1
    )
    unchanged(h)


async def test_a_body_over_the_limit_gets_413(rig: Rig) -> None:
    client, h, _ = rig
    reply = await client.post("/callbacks/infobip/reports", data=b"{" + b" " * 70_000 + b"}", headers=basic())
    assert reply.status == 413
    unchanged(h)


async def test_any_route_reading_an_unreadable_form_gets_400_from_the_middleware(rig: Rig) -> None:
    client, _, _ = rig
    for body, content_type in [
        (b"name=\xff", FORM),
        (b"a=1", f"{FORM}; charset=no-such-charset"),
        (b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    ]:
        reply = await client.post("/form", data=body, headers={"Content-Type": content_type})
        assert reply.status == 400, content_type
        assert await reply.json() == {"error": "bad request"}


async def test_an_unexpected_error_is_a_plain_500_and_logged_by_class_only(rig: Rig) -> None:
    client, _, _ = rig
    with capture_logs() as logs:
        reply = await client.get("/boom")
    assert reply.status == 500
    assert await reply.json() == {"error": "internal error"}
    assert [(e["event"], e["error"], e["route"]) for e in logs] == [
        ("http_unexpected_error", "RuntimeError", "/boom")
    ]
    assert "85291234567" not in json.dumps(logs)


async def test_the_public_app_serves_neither_metrics_nor_health(rig: Rig) -> None:
    client, _, _ = rig
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await client.get(path)).status == 404
