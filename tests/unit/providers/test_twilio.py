"""TwilioClient against the real sandbox app on loopback: success, every error class, privacy."""

from __future__ import annotations

import socket
import traceback
from collections.abc import AsyncIterator, Callable

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
from service.providers.twilio import ERROR_CLASSES, TwilioClient, error_for, parse_retry_after
from service.sandbox.server import Fault, SandboxState, run_sandbox

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TOKEN = "tok-5f2b9c1d-secret"
SENDER = "+15005550006"
NUMBER = "+85291234567"
BODY = "Parcel HK-4711 is out for delivery today"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxState, str]]:
    state = SandboxState(ACCOUNT_SID, TOKEN)
    runner = await run_sandbox("127.0.0.1", 0, state)
    host, port = runner.addresses[0][:2]
    yield state, f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_send_returns_twilio_sid_and_status(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    client: SmsSender = make_client()
    accepted = await client.send_sms(NUMBER, BODY)

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

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        client = TwilioClient(
            session,
            base_url=f"http://{host}:{port}/",
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender=SENDER,
            status_callback="https://notifier.example/receipts/twilio",
        )
        await client.send_sms(NUMBER, BODY)
    finally:
        await runner.cleanup()

    [(path, content_type, authorization, form)] = seen
    assert path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert content_type == "application/x-www-form-urlencoded"
    assert authorization == aiohttp.encode_basic_auth(ACCOUNT_SID, TOKEN)
    assert form == {
        "To": NUMBER,
        "From": SENDER,
        "Body": BODY,
        "StatusCallback": "https://notifier.example/receipts/twilio",
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
        await make_client().send_sms(NUMBER, BODY)

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
        await make_client().send_sms(NUMBER, BODY)
    assert info.value.retriable is expected.retriable
    assert info.value.permanent is expected.permanent
    assert info.value.retriable != info.value.permanent


async def test_wrong_token_is_provider_rejected(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected) as info:
        await make_client(auth_token="not-the-token").send_sms(NUMBER, BODY)
    assert info.value.code == "20003"


async def test_wrong_account_is_provider_rejected(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected) as info:
        await make_client(account_sid="AC" + "f" * 32).send_sms(NUMBER, BODY)
    assert info.value.code == "20003"


async def test_malformed_number_is_invalid_recipient(make_client: MakeClient) -> None:
    with pytest.raises(InvalidRecipient) as info:
        await make_client().send_sms("85291234567", BODY)
    assert info.value.code == "21211"


async def test_rate_limited_carries_retry_after(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].fault = Fault(error_rate=1.0, error_code=429, retry_after=7)
    with pytest.raises(RateLimited) as info:
        await make_client().send_sms(NUMBER, BODY)
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
        await client.send_sms(NUMBER, BODY)
    assert info.value.code == "network"
    assert info.value.ambiguous


async def test_timeout_is_provider_unavailable(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].fault = Fault(latency_ms=300)
    with pytest.raises(ProviderUnavailable) as info:
        await make_client(timeout_s=0.05).send_sms(NUMBER, BODY)
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

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", garbled)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        client = TwilioClient(
            session,
            base_url=f"http://{host}:{port}",
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            sender=SENDER,
        )
        with pytest.raises(ProviderUnavailable) as info:
            await client.send_sms(NUMBER, BODY)
    finally:
        await runner.cleanup()
    assert info.value.code == "201"
    assert_no_personal_data(info.value, NUMBER)


def assert_no_personal_data(exc: BaseException, number: str) -> None:
    """Neither the message, the repr nor the full traceback (with its causes) leaks anything."""
    rendered = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), str(exc.args)]
    for text in rendered:
        for secret in (number, number.lstrip("+"), BODY, TOKEN):
            assert secret not in text


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
        await client.send_sms(number, BODY)

    assert_no_personal_data(info.value, number)
    assert TOKEN not in repr(client)
