"""TwilioClient against the real sandbox app on loopback: success, every error class, privacy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
)
from service.domain.ports import SendAccepted, SmsSender
from service.domain.status_check import Answer
from service.sandbox.serve import Fault, SandboxState
from service.send.providers.twilio import (
    ERROR_CLASSES,
    TwilioClient,
    error_for,
    parse_retry_after,
    twilio_signature,
    verify_twilio_signature,
)
from tests.provider_servers import serve
from tests.unit.send.providers.conftest import ACCOUNT_SID, TOKEN
from tests.unit.send.providers.helpers import assert_no_secrets, free_port

SENDER = "+15005550006"
NUMBER = "+85291234567"
BODY = "Parcel HK-4711 is out for delivery today"
REF = "4f1c0a9e2b7d4c35a1e08f6b9d2c7e11.0"
MESSAGES = "/2010-04-01/Accounts/{sid}/Messages.json"  # the route a stand-in serves


MakeClient = Callable[..., TwilioClient]


@pytest.fixture
def make_client(session: aiohttp.ClientSession, sandbox: tuple[SandboxState, str]) -> MakeClient:
    def make(**overrides: object) -> TwilioClient:
        kwargs: dict[str, object] = {
            "base_url": sandbox[1],
            "account_sid": ACCOUNT_SID,
            "auth_token": TOKEN,
            "sender": SENDER,
        }
        kwargs.update(overrides)
        return TwilioClient(session, **kwargs)  # type: ignore[arg-type]

    return make


async def test_send_returns_twilio_sid_and_status(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    client: SmsSender = make_client()
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)

    assert isinstance(accepted, SendAccepted)
    assert accepted.provider == "twilio" == client.name
    assert accepted.status == "queued"
    assert accepted.message_id.startswith("SM")
    assert len(accepted.message_id) == 34
    [recorded] = sandbox[0].messages
    assert (recorded.sid, recorded.to, recorded.from_, recorded.body) == (
        accepted.message_id,
        NUMBER,
        SENDER,
        BODY,
    )


async def test_request_is_form_encoded_with_basic_auth_and_status_callback(
    session: aiohttp.ClientSession,
) -> None:
    seen: list[tuple[str, str, str, dict[str, str]]] = []

    async def capture(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        seen.append((request.path, request.content_type, request.headers["Authorization"], form))
        return web.json_response({"sid": "SM" + "0" * 32, "status": "queued"}, status=201)

    async with serve(capture, method="POST", path=MESSAGES) as url:
        client = TwilioClient(
            session,
            base_url=f"{url}/",
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender=SENDER,
            status_callback="https://notifier.example/receipts/twilio",
        )
        await client.send_sms(NUMBER, BODY, reference=REF)

    [(path, content_type, authorization, form)] = seen
    assert path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert content_type == "application/x-www-form-urlencoded"
    assert authorization == aiohttp.encode_basic_auth(ACCOUNT_SID, TOKEN)
    assert form == {
        "To": NUMBER,
        "From": SENDER,
        "Body": BODY,
        "StatusCallback": f"https://notifier.example/receipts/twilio?ref={REF}",
    }


@pytest.mark.parametrize(
    ("error_code", "expected", "code"),
    [
        *((c, cls, str(c)) for c, cls in sorted(ERROR_CLASSES.items())),
        (500, ProviderUnavailable, "20500"),
        (503, ProviderUnavailable, "20503"),
        (429, RateLimited, "20429"),
        (400, ProviderRejected, "20400"),
        (401, ProviderRejected, "20003"),
        (403, ProviderRejected, "20403"),
        (21999, ProviderRejected, "21999"),  # an unknown 4xx code
    ],
)
async def test_fault_maps_to_error_class(
    make_client: MakeClient,
    sandbox: tuple[SandboxState, str],
    error_code: int,
    expected: type[ProviderError],
    code: str,
) -> None:
    sandbox[0].fault = Fault(error_rate=1.0, error_code=error_code)

    with pytest.raises(expected) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)

    assert type(info.value) is expected
    assert (info.value.provider, info.value.code) == ("twilio", code)
    assert sandbox[0].messages == []


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [
        (21211, InvalidRecipient),
        (21610, RecipientOptedOut),
        (30007, ContentRejected),
        (30008, ProviderUnavailable),
        (503, ProviderUnavailable),
        (429, RateLimited),
        (20003, ProviderRejected),
    ],
)
async def test_retriable_and_permanent_flags(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], error_code: int, expected: type[ProviderError]
) -> None:
    sandbox[0].fault = Fault(error_rate=1.0, error_code=error_code)
    with pytest.raises(ProviderError) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)
    assert info.value.retriable is expected.retriable
    assert info.value.permanent is expected.permanent
    assert info.value.retriable != info.value.permanent


async def test_wrong_token_is_provider_rejected(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected) as info:
        await make_client(auth_token="not-the-token").send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "20003"


async def test_wrong_account_is_provider_rejected(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected) as info:
        await make_client(account_sid="AC" + "f" * 32).send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "20003"


async def test_malformed_number_is_invalid_recipient(make_client: MakeClient) -> None:
    with pytest.raises(InvalidRecipient) as info:
        await make_client().send_sms("85291234567", BODY, reference=REF)
    assert info.value.code == "21211"


async def test_rate_limited_carries_retry_after(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].fault = Fault(error_rate=1.0, error_code=429, retry_after=7)
    with pytest.raises(RateLimited) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)
    assert info.value.retry_after == 7.0
    assert info.value.code == "20429"


async def test_connection_refused_is_provider_unavailable(session: aiohttp.ClientSession) -> None:
    client = TwilioClient(
        session,
        base_url=f"http://127.0.0.1:{free_port()}",
        account_sid=ACCOUNT_SID,
        auth_token=TOKEN,
        sender=SENDER,
    )
    with pytest.raises(ProviderUnavailable) as info:
        await client.send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "network"
    assert info.value.ambiguous


async def test_timeout_is_provider_unavailable(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].fault = Fault(latency_ms=300)
    with pytest.raises(ProviderUnavailable) as info:
        await make_client(timeout_s=0.05).send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "timeout"


@pytest.mark.parametrize(
    ("status", "payload", "retry_after", "expected", "code"),
    [
        (502, None, None, ProviderUnavailable, "502"),  # an HTML page from a proxy
        (429, None, None, RateLimited, "429"),
        (429, {"code": 20429}, "2.5", RateLimited, "20429"),
        (400, {"code": 21610, "message": "..."}, None, RecipientOptedOut, "21610"),
        (401, {"code": "20003"}, None, ProviderRejected, "401"),  # a code that is not a number is ignored
        (404, {"code": 20404}, None, ProviderRejected, "20404"),
        (302, None, None, ProviderRejected, "302"),
    ],
)
def test_error_for_table(
    status: int, payload: object, retry_after: str | None, expected: type[ProviderError], code: str
) -> None:
    err = error_for(status, payload, retry_after)
    assert type(err) is expected
    assert err.code == code


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


async def test_unreadable_success_is_ambiguous(session: aiohttp.ClientSession) -> None:
    async def garbled(_: web.Request) -> web.Response:
        return web.Response(status=201, text=f"<html>{NUMBER} {BODY}</html>")

    async with serve(garbled, method="POST", path=MESSAGES) as url:
        client = TwilioClient(
            session,
            base_url=url,
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender=SENDER,
        )
        with pytest.raises(ProviderUnavailable) as info:
            await client.send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "201"
    assert_no_personal_data(info.value, NUMBER)


def assert_no_personal_data(exc: BaseException, number: str) -> None:
    assert_no_secrets(exc, (number, number.lstrip("+"), BODY, TOKEN))


PRIVACY_CASES = [
    *(pytest.param({"fault": Fault(1.0, c)}, id=f"fault-{c}") for c in [*ERROR_CLASSES, 500, 503, 429, 400]),
    pytest.param({"fault": Fault(1.0, 429, retry_after=3)}, id="rate-limited"),
    pytest.param({"token": "wrong-token"}, id="wrong-token"),
    pytest.param({"number": "85291234567"}, id="malformed-number"),  # the sandbox echoes it, like Twilio
    pytest.param({"number": "+1234"}, id="short-number"),
    pytest.param({"fault": Fault(latency_ms=300), "timeout_s": 0.05}, id="timeout"),
    pytest.param({"refused": True}, id="connection-refused"),
]


@pytest.mark.parametrize("case", PRIVACY_CASES)
async def test_errors_never_contain_number_body_or_token(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], case: dict[str, object]
) -> None:
    if isinstance(fault := case.get("fault"), Fault):
        sandbox[0].fault = fault
    overrides: dict[str, object] = {"timeout_s": case.get("timeout_s", 10.0)}
    if "token" in case:
        overrides["auth_token"] = case["token"]
    if case.get("refused"):
        overrides["base_url"] = f"http://127.0.0.1:{free_port()}"
    number = str(case.get("number", NUMBER))
    client = make_client(**overrides)

    with pytest.raises(ProviderError) as info:
        await client.send_sms(number, BODY, reference=REF)

    assert_no_personal_data(info.value, number)
    assert TOKEN not in repr(client)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://n.example/cb", f"https://n.example/cb?ref={REF}"),
        ("https://n.example/cb?tenant=hk", f"https://n.example/cb?tenant=hk&ref={REF}"),
        ("https://n.example/cb?ref=old", f"https://n.example/cb?ref={REF}"),
    ],
)
def test_status_callback_url_carries_the_reference(make_client: MakeClient, base: str, expected: str) -> None:
    assert make_client(status_callback=base).status_callback_url(REF) == expected
    assert make_client().status_callback_url(REF) is None


# --- find_sent: reconciling after an ambiguous failure ------------------------------------------


async def test_find_sent_finds_the_message_created_since(make_client: MakeClient) -> None:
    client = make_client()
    since = datetime.now(UTC)
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)
    await client.send_sms(NUMBER, "another message", reference="other.0")
    await client.send_sms("+85298765432", BODY, reference="other.1")

    found = await client.find_sent(NUMBER, BODY, reference=REF, since=since)

    assert found == SendAccepted("twilio", accepted.message_id, "delivered")  # its status by now


async def test_find_sent_ignores_messages_created_before_since(make_client: MakeClient) -> None:
    client = make_client()
    await client.send_sms(NUMBER, BODY, reference=REF)
    later = datetime.now(UTC) + timedelta(seconds=2)
    assert await client.find_sent(NUMBER, BODY, reference=REF, since=later) is None


async def test_find_sent_counts_whole_seconds_like_twilio(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    """Twilio stamps date_created to the second: a send started at .9 s is found from .0 s."""
    fixed = datetime(2025, 3, 4, 5, 6, 7, 900_000, tzinfo=UTC)
    sandbox[0]._now = lambda: fixed  # the sandbox's clock, for this one test
    client = make_client()
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)
    found = await client.find_sent(NUMBER, BODY, reference=REF, since=fixed.replace(microsecond=950_000))
    assert found is not None
    assert found.message_id == accepted.message_id


async def test_find_sent_returns_none_when_nothing_matches(make_client: MakeClient) -> None:
    assert await make_client().find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC)) is None


async def test_find_sent_reads_at_most_three_pages(session: aiohttp.ClientSession) -> None:
    pages: list[dict[str, str]] = []

    async def listing(request: web.Request) -> web.Response:
        pages.append(dict(request.query))
        page = int(request.query.get("Page", 0))
        base = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        body = {
            "messages": [{"sid": "SM" + "1" * 32, "to": NUMBER, "body": "other", "status": "sent",
                          "date_created": "Tue, 04 Mar 2025 05:06:07 +0000"}],
            "next_page_uri": f"{base}?To=%2B85291234567&PageSize=1&Page={page + 1}&PageToken=PA{page}",
        }  # fmt: skip
        return web.json_response(body)

    async with serve(listing, method="GET", path=MESSAGES) as url:
        client = TwilioClient(
            session,
            base_url=url,
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender=SENDER,
        )
        since = datetime(2025, 3, 4, tzinfo=UTC)
        assert await client.find_sent(NUMBER, BODY, reference=REF, since=since) is None

    assert len(pages) == 3
    assert pages[0] == {"To": NUMBER, "DateSent>": "2025-03-04", "PageSize": "1000"}
    assert [p.get("Page") for p in pages] == [None, "1", "2"]


async def test_find_sent_follows_pages_of_the_sandbox(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], session: aiohttp.ClientSession
) -> None:
    client = make_client()
    since = datetime.now(UTC)
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)
    for n in range(60):  # newest first: ours is on page 2 of Twilio's default 50
        await client.send_sms(NUMBER, f"later message {n}", reference=f"later.{n}")
    found = await client.find_sent(NUMBER, BODY, reference=REF, since=since)
    assert found is not None
    assert found.message_id == accepted.message_id


@pytest.mark.parametrize(
    ("fault", "expected", "code"),
    [
        (Fault(1.0, 503), ProviderUnavailable, "20503"),
        (Fault(1.0, 429, retry_after=3), RateLimited, "20429"),
    ],
)
async def test_find_sent_errors_are_translated_like_send(
    session: aiohttp.ClientSession,
    fault: Fault,
    expected: type[ProviderError],
    code: str,
) -> None:
    async def failing(request: web.Request) -> web.Response:
        status = int(fault.error_code)
        headers = {"Retry-After": "3"} if status == 429 else None
        return web.json_response({"code": 20000 + status, "message": NUMBER}, status=status, headers=headers)

    async with serve(failing, method="GET", path=MESSAGES) as url:
        client = TwilioClient(
            session,
            base_url=url,
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender=SENDER,
        )
        with pytest.raises(expected) as info:
            await client.find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC))
    assert info.value.code == code
    assert_no_personal_data(info.value, NUMBER)


async def test_find_sent_with_wrong_token_is_rejected(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected):
        await make_client(auth_token="wrong").find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC))


async def test_find_sent_timeout_and_refusal_are_unavailable(session: aiohttp.ClientSession) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.json_response({"messages": []})

    async with serve(slow, method="GET", path=MESSAGES) as url:
        for base_url, code in [(url, "timeout"), (f"http://127.0.0.1:{free_port()}", "network")]:
            client = TwilioClient(
                session,
                base_url=base_url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                sender=SENDER,
                timeout_s=0.05,
            )
            with pytest.raises(ProviderUnavailable) as info:
                await client.find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC))
            assert info.value.code == code
            assert_no_personal_data(info.value, NUMBER)


# --- X-Twilio-Signature ---------------------------------------------------------------------------


def test_signature_matches_twilios_documented_example() -> None:
    """The worked example of Twilio's "Webhooks security" page (token 12345)."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_signature_agrees_with_the_official_sdk() -> None:
    from twilio.request_validator import RequestValidator

    rng = random.Random(3)
    validator = RequestValidator(TOKEN)
    for n in range(20):
        params = {f"P{rng.randrange(100)}": f"v{rng.random()} ü{n}" for _ in range(rng.randrange(1, 8))}
        url = f"https://notifier.example/callbacks/twilio/status?ref={n}.0"
        signature = twilio_signature(TOKEN, url, params)
        assert validator.compute_signature(url, params) == signature
        assert validator.validate(url, params, signature)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda u, p, s: (u + "x", p, s), id="url"),
        pytest.param(lambda u, p, s: (u, {**p, "MessageStatus": "delivered"}, s), id="param-value"),
        pytest.param(lambda u, p, s: (u, {**p, "Extra": ""}, s), id="param-added"),
        pytest.param(lambda u, p, s: (u, p, s[:-2] + "A="), id="signature"),
        pytest.param(lambda u, p, s: (u, p, ""), id="empty"),
        pytest.param(lambda u, p, s: (u, p, "ü" * 28), id="non-ascii"),
    ],
)
def test_verify_rejects_tampering(tamper: Callable[[str, dict[str, str], str], Any]) -> None:
    url, params = f"https://n.example/cb?ref={REF}", {"MessageStatus": "undelivered", "ErrorCode": "30003"}
    signature = twilio_signature(TOKEN, url, params)
    assert verify_twilio_signature(TOKEN, url, params, signature)
    assert not verify_twilio_signature(TOKEN, *tamper(url, params, signature))
    assert not verify_twilio_signature("other-token", url, params, signature)


# --- status callbacks from the sandbox --------------------------------------------------------------


async def test_status_callbacks_arrive_signed_and_verify(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], receiver: Any
) -> None:
    callback = f"{receiver.base_url}/callbacks/twilio/status"
    accepted = await make_client(status_callback=callback).send_sms(NUMBER, BODY, reference=REF)
    await sandbox[0].callbacks.drain()

    assert [r.form()["MessageStatus"] for r in receiver.received] == ["sent", "delivered"]
    for r in receiver.received:
        form = r.form()
        assert r.url == f"{callback}?ref={REF}"
        assert (form["MessageSid"], form["AccountSid"], form["To"], form["From"]) == (
            accepted.message_id,
            ACCOUNT_SID,
            NUMBER,
            SENDER,
        )
        assert form["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in form
        assert verify_twilio_signature(TOKEN, r.url, form, r.headers["X-Twilio-Signature"])
        assert not verify_twilio_signature(
            TOKEN, r.url, {**form, "MessageStatus": "failed"}, r.headers["X-Twilio-Signature"]
        )
    assert sandbox[0].callbacks.failures == []


# --- delivery_status: a send whose status callback was lost ---------------------------------------


@pytest.mark.parametrize(
    ("fault", "answer", "code"),
    [
        (None, Answer.DELIVERED, None),
        (Fault(undelivered_rate=1.0), Answer.UNDELIVERED, {"30003", "30005"}),
    ],
)
async def test_delivery_status_reads_the_message_resource_without_any_callback(
    make_client: MakeClient,
    sandbox: tuple[SandboxState, str],
    fault: Fault | None,
    answer: Answer,
    code: set[str] | None,
) -> None:
    state = sandbox[0]
    state.set_fault("twilio", fault)
    client = make_client()  # no StatusCallback: nobody is called back, the message still moves on
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)
    await state.callbacks.drain()
    status = await client.delivery_status(accepted.message_id, reference=REF)
    assert status is not None
    assert status.answer is answer
    assert (status.code in code) if code else status.code is None
    assert state.callbacks.sent == state.callbacks.failures == []


async def test_delivery_status_of_a_message_on_its_way_is_pending(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    state = sandbox[0]
    client = make_client()
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)
    await state.callbacks.drain()
    state.resources[accepted.message_id]["status"] = "sending"  # still on its way
    status = await client.delivery_status(accepted.message_id, reference=REF)
    assert status is not None
    assert (status.answer, status.code) == (Answer.PENDING, None)


async def test_delivery_status_of_an_unknown_sid_is_none_and_errors_are_translated(
    make_client: MakeClient,
) -> None:
    assert await make_client().delivery_status("SM" + "0" * 32, reference=REF) is None
    assert await make_client().delivery_status(None, reference=REF) is None
    with pytest.raises(ProviderRejected):
        await make_client(auth_token="wrong").delivery_status("SM" + "0" * 32, reference=REF)
    with pytest.raises(ProviderUnavailable):
        await make_client(base_url=f"http://127.0.0.1:{free_port()}").delivery_status("SM1", reference=REF)


async def test_delivery_status_response_matches_twilios_published_spec(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    """The GET by SID is Twilio's path and the fields read (status, error_code) are the spec's."""
    import json
    from pathlib import Path

    spec = json.loads(
        (Path(__file__).parents[3] / "fixtures/provider-specs/twilio-messages.openapi.json").read_text()
    )
    assert "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json" in spec["paths"]
    schema = spec["components"]["schemas"]
    assert {"status", "error_code"} <= set(schema["api.v2010.account.message"]["properties"])
    statuses = set(schema["message_enum_status"]["enum"])
    assert {"delivered", "undelivered", "failed"} <= statuses
    accepted = await make_client().send_sms(NUMBER, BODY, reference=REF)
    assert sandbox[0].resources[accepted.message_id]["status"] in statuses
