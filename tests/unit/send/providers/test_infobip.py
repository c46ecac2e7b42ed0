"""InfobipClient against the real sandbox on loopback: sends, batches, every error mapping, look-ups, privacy."""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

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
from service.sandbox import infobip as sandbox_infobip
from service.sandbox.serve import Fault, SandboxState
from service.send.providers.infobip import ERROR_CLASSES, InfobipClient, error_class
from tests.provider_servers import Canned, serve
from tests.unit.sandbox.receiver import Receiver
from tests.unit.send.providers.conftest import INFOBIP_KEY
from tests.unit.send.providers.helpers import assert_no_secrets, free_port

SENDER = "Specialized"
NUMBER = "+85291234567"
BODY = "您的單車已抵達香港倉庫 HK-4711"
REF = "9b2e6d1c0f3a4e7b8c5d2a1f0e9d8c7b.1"

MakeClient = Callable[..., InfobipClient]


@pytest.fixture
def make_client(session: aiohttp.ClientSession, sandbox: tuple[SandboxState, str]) -> MakeClient:
    def make(**overrides: Any) -> InfobipClient:
        kwargs: dict[str, Any] = {"base_url": sandbox[1], "api_key": INFOBIP_KEY, "sender": SENDER}
        kwargs.update(overrides)
        return InfobipClient(session, **kwargs)

    return make


@pytest.fixture
async def canned_url() -> AsyncIterator[Callable[[Canned], Any]]:
    async with contextlib.AsyncExitStack() as servers:

        async def serve_canned(canned: Canned) -> str:
            return await servers.enter_async_context(serve(canned.handle))

        yield serve_canned


def assert_private(exc: BaseException) -> None:
    assert_no_secrets(exc, (NUMBER, NUMBER.lstrip("+"), BODY, INFOBIP_KEY, "Invalid login details"))


def status(name: str) -> dict[str, Any]:
    return sandbox_infobip.status_object(name)


# --- sending -------------------------------------------------------------------------------------------


async def test_send_returns_infobip_message_id_and_status(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    client: SmsSender = make_client()
    accepted = await client.send_sms(NUMBER, BODY, reference=REF)

    assert accepted == SendAccepted("infobip", REF, "PENDING_ACCEPTED")
    assert client.name == "infobip"
    [recorded] = sandbox[0].messages
    assert (
        recorded.provider,
        recorded.sid,
        recorded.to,
        recorded.from_,
        recorded.body,
        recorded.reference,
    ) == (
        "infobip",
        REF,
        NUMBER,
        SENDER,
        BODY,
        REF,
    )


@pytest.mark.parametrize("notify_url", [None, "https://notifier.example/callbacks/infobip/reports"])
async def test_request_is_infobip_advanced_json_with_app_auth(
    session: aiohttp.ClientSession, canned_url: Any, notify_url: str | None
) -> None:
    canned = Canned(
        200, {"messages": [{"messageId": REF, "status": status("PENDING_ACCEPTED"), "to": "852"}]}
    )
    client = InfobipClient(
        session,
        base_url=await canned_url(canned) + "/",
        api_key=INFOBIP_KEY,
        sender=SENDER,
        notify_url=notify_url,
    )
    await client.send_sms(NUMBER, BODY, reference=REF)

    [(method, path, headers, payload)] = canned.requests
    assert (method, path) == ("POST", "/sms/2/text/advanced")
    assert headers["Authorization"] == f"App {INFOBIP_KEY}"
    assert headers["Content-Type"] == "application/json"
    message: dict[str, Any] = {
        "destinations": [{"to": "85291234567", "messageId": REF}],
        "from": SENDER,
        "text": BODY,
        "callbackData": REF,
    }
    if notify_url:
        message |= {"notifyUrl": notify_url, "notifyContentType": "application/json"}
    assert payload == {"messages": [message]}


async def test_send_many_sends_one_request_and_maps_each_result(
    session: aiohttp.ClientSession, canned_url: Any
) -> None:
    answers = [  # Infobip's order need not be ours: results are matched by messageId
        {"messageId": "r.2", "status": status("REJECTED_DND"), "to": "85290000002"},
        {"messageId": "r.0", "status": status("PENDING_ACCEPTED"), "to": "85290000000"},
        {"messageId": "r.1", "status": status("REJECTED_NOT_ENOUGH_CREDITS"), "to": "85290000001"},
    ]
    canned = Canned(200, {"bulkId": "b-1", "messages": answers})
    client = InfobipClient(session, base_url=await canned_url(canned), api_key=INFOBIP_KEY, sender=SENDER)
    items = [(f"+8529000000{n}", f"body {n}", f"r.{n}") for n in range(4)]

    results = await client.send_many(items)

    assert len(canned.requests) == 1
    assert [m["callbackData"] for m in canned.requests[0][3]["messages"]] == ["r.0", "r.1", "r.2", "r.3"]
    assert results[0] == SendAccepted("infobip", "r.0", "PENDING_ACCEPTED")
    assert [(type(r), getattr(r, "code", None)) for r in results[1:]] == [
        (ProviderRejected, "REJECTED_NOT_ENOUGH_CREDITS"),
        (RecipientOptedOut, "REJECTED_DND"),
        (ProviderUnavailable, "200"),  # no answer for it: it may be on its way
    ]


async def test_send_many_against_the_sandbox(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    items = [(NUMBER, BODY, "a.0"), ("+1234", BODY, "a.1"), ("+85298765432", "second", "a.2")]
    results = await make_client().send_many(items)

    assert results[0] == SendAccepted("infobip", "a.0", "PENDING_ACCEPTED")
    assert isinstance(results[1], ProviderRejected)
    assert results[1].code == "REJECTED_DESTINATION"
    assert results[2] == SendAccepted("infobip", "a.2", "PENDING_ACCEPTED")
    assert [m.reference for m in sandbox[0].messages] == ["a.0", "a.2"]
    assert await make_client().send_many([]) == []


async def test_send_many_whole_request_failure_is_every_items_error(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].faults["infobip"] = Fault(1.0, 429, retry_after=4)
    results = await make_client().send_many([(NUMBER, BODY, "x.0"), (NUMBER, BODY, "x.1")])
    assert all(isinstance(r, RateLimited) and r.retry_after == 4.0 for r in results)
    assert results[0] is not results[1]


# --- errors ----------------------------------------------------------------------------------------


def expected_class(name: str) -> type[ProviderError]:
    return {
        "REJECTED_DND": RecipientOptedOut,
        "REJECTED_DESTINATION_BLOCKLISTED": InvalidRecipient,
        "REJECTED_SOURCE": ContentRejected,
        "REJECTED_SENDER": ContentRejected,
        "REJECTED_FLOODING_FILTER": ContentRejected,
        "REJECTED_MESSAGE_TOO_LONG": ContentRejected,
        "SIGNALS_BLOCKED": ContentRejected,
        "REJECTED_SYSTEM_ERROR": ProviderUnavailable,
        "REJECTED_DUPLICATE_MESSAGE_ID": ProviderUnavailable,
    }.get(name, ProviderRejected)


@pytest.mark.parametrize("name", sorted(sandbox_infobip.REJECTED))
async def test_rejected_status_maps_to_error_class(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], name: str
) -> None:
    sandbox[0].faults["infobip"] = Fault(1.0, name)

    with pytest.raises(ProviderError) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)

    assert type(info.value) is expected_class(name) is ERROR_CLASSES[name]
    assert (info.value.provider, info.value.code) == ("infobip", name)
    assert sandbox[0].messages == []
    assert_private(info.value)


@pytest.mark.parametrize(
    ("error_code", "expected", "code"),
    [
        (400, ProviderRejected, "BAD_REQUEST"),
        (401, ProviderRejected, "UNAUTHORIZED"),
        (403, ProviderRejected, "FORBIDDEN"),
        (404, ProviderRejected, "NOT_FOUND"),
        (429, RateLimited, "TOO_MANY_REQUESTS"),
        (500, ProviderUnavailable, "GENERAL_ERROR"),
        (502, ProviderUnavailable, "GENERAL_ERROR"),
        (503, ProviderUnavailable, "GENERAL_ERROR"),
    ],
)
async def test_http_fault_maps_to_error_class(
    make_client: MakeClient,
    sandbox: tuple[SandboxState, str],
    error_code: int,
    expected: type[ProviderError],
    code: str,
) -> None:
    sandbox[0].faults["infobip"] = Fault(1.0, error_code)
    with pytest.raises(ProviderError) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)
    assert type(info.value) is expected
    assert info.value.code == code
    assert info.value.retriable is expected.retriable
    assert_private(info.value)


async def test_wrong_key_is_provider_rejected(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected) as info:
        await make_client(api_key="wrong-key").send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "UNAUTHORIZED"


async def test_rate_limited_carries_retry_after(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].faults["infobip"] = Fault(1.0, 429, retry_after=9)
    with pytest.raises(RateLimited) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)
    assert info.value.retry_after == 9.0


async def test_outage_is_provider_unavailable(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    state = sandbox[0]
    state.faults["infobip"] = Fault(outage_until=state.monotonic() + 60)
    with pytest.raises(ProviderUnavailable) as info:
        await make_client().send_sms(NUMBER, BODY, reference=REF)
    assert info.value.ambiguous


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        (401, {"requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": NUMBER}}}, ProviderRejected, "UNAUTHORIZED"),
        (400, {"requestError": {"serviceException": {"messageId": "INVALID_ARGUMENT", "text": "x"}}}, ProviderRejected, "INVALID_ARGUMENT"),
        (403, {"errorCode": "E403", "description": NUMBER}, ProviderRejected, "E403"),
        (429, None, RateLimited, "429"),
        (502, "<html>bad gateway</html>", ProviderUnavailable, "502"),
        (400, {"requestError": {"serviceException": {"messageId": NUMBER, "text": "x"}}}, ProviderRejected, "400"),
        (200, {"messages": [{"messageId": REF, "status": {"groupName": "PENDING"}}]}, SendAccepted, ""),
        (200, {"messages": [{"messageId": REF, "status": {"groupId": 5, "name": "REJECTED_SOMETHING_NEW"}}]}, ProviderRejected, "REJECTED_SOMETHING_NEW"),
        (200, {"messages": [{"messageId": REF, "status": {"groupId": 5, "name": f"{NUMBER} bad"}}]}, ProviderRejected, "REJECTED"),
        (200, {"messages": [{"messageId": REF, "status": {"groupName": "UNDELIVERABLE", "name": "X"}}]}, ProviderUnavailable, "X"),
        (200, {"unexpected": True}, ProviderUnavailable, "200"),
    ],
)  # fmt: skip
async def test_responses_are_read_without_their_text(
    session: aiohttp.ClientSession, canned_url: Any, *, status: int, body: Any, expected: type, code: str
) -> None:
    client = InfobipClient(
        session, base_url=await canned_url(Canned(status, body)), api_key=INFOBIP_KEY, sender=SENDER
    )
    if expected is SendAccepted:
        assert await client.send_sms(NUMBER, BODY, reference=REF) == SendAccepted("infobip", REF, "PENDING")
        return
    with pytest.raises(ProviderError) as info:
        await client.send_sms(NUMBER, BODY, reference=REF)
    assert (type(info.value), info.value.code) == (expected, code)
    assert_private(info.value)


async def test_timeout_is_provider_unavailable(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    sandbox[0].faults["infobip"] = Fault(latency_ms=300)
    with pytest.raises(ProviderUnavailable) as info:
        await make_client(timeout_s=0.05).send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "timeout"
    assert_private(info.value)


async def test_connection_refused_is_provider_unavailable(make_client: MakeClient) -> None:
    with pytest.raises(ProviderUnavailable) as info:
        await make_client(base_url=f"http://127.0.0.1:{free_port()}").send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "network"
    assert_private(info.value)


@pytest.mark.parametrize(
    ("name", "permanent", "expected"),
    [
        ("EC_UNKNOWN_SUBSCRIBER", True, InvalidRecipient),
        ("EC_ABSENT_SUBSCRIBER", False, ProviderUnavailable),
        ("EC_REJECTED_SPAM_BY_OPERATOR", True, ContentRejected),
        ("EC_CONTENT_BLOCKED", True, RecipientOptedOut),
        ("REJECTED_DESTINATION", None, ProviderRejected),
        ("REJECTED_NOT_ENOUGH_CREDITS", None, ProviderRejected),
        ("EC_SOMETHING_NEW", True, ProviderRejected),
        ("EC_SOMETHING_NEW", False, ProviderUnavailable),
        ("EC_SOMETHING_NEW", None, ProviderRejected),
    ],
)
def test_error_class_table(name: str, permanent: bool | None, expected: type[ProviderError]) -> None:
    assert error_class(name, permanent=permanent) is expected


def test_every_sandbox_error_name_is_in_the_table() -> None:
    assert set(ERROR_CLASSES) >= sandbox_infobip.REJECTED
    assert set(sandbox_infobip.UNDELIVERED_ERRORS) <= set(ERROR_CLASSES)


async def test_repr_and_errors_never_show_the_key(make_client: MakeClient) -> None:
    client = make_client(api_key="wrong-" + INFOBIP_KEY)
    assert INFOBIP_KEY not in repr(client)
    with pytest.raises(ProviderRejected) as info:
        await client.send_sms(NUMBER, BODY, reference=REF)
    assert_private(info.value)


# --- find_sent and duplicates ------------------------------------------------------------------------


async def test_find_sent_finds_by_reference(make_client: MakeClient) -> None:
    client = make_client()
    await client.send_sms(NUMBER, BODY, reference=REF)
    await client.send_sms(NUMBER, BODY, reference="other.0")
    found = await client.find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC))
    assert found == SendAccepted("infobip", REF, "DELIVERED_TO_HANDSET")  # its status by now
    assert await client.find_sent(NUMBER, BODY, reference="never.0", since=datetime.now(UTC)) is None


async def test_retry_with_the_same_reference_is_a_duplicate_that_find_sent_resolves(
    make_client: MakeClient, sandbox: tuple[SandboxState, str]
) -> None:
    """Our reference is Infobip's messageId: a resend after a lost answer cannot double-send."""
    client = make_client()
    await client.send_sms(NUMBER, BODY, reference=REF)
    with pytest.raises(ProviderUnavailable) as info:
        await client.send_sms(NUMBER, BODY, reference=REF)
    assert info.value.code == "REJECTED_DUPLICATE_MESSAGE_ID"
    assert await client.find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC)) is not None
    assert len(sandbox[0].messages) == 1


async def test_find_sent_ignores_a_rejected_message(session: aiohttp.ClientSession, canned_url: Any) -> None:
    canned = Canned(200, {"results": [{"messageId": REF, "status": status("REJECTED_DESTINATION")}]})
    client = InfobipClient(session, base_url=await canned_url(canned), api_key=INFOBIP_KEY, sender=SENDER)
    assert await client.find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC)) is None
    [(method, path, headers, _)] = canned.requests
    assert (method, path, headers["Authorization"]) == (
        "GET",
        f"/sms/1/logs?messageId={REF}",
        f"App {INFOBIP_KEY}",
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({"api_key": "wrong"}, ProviderRejected), ({"base_url": "refused"}, ProviderUnavailable)],
)
async def test_find_sent_errors_are_translated(
    make_client: MakeClient, overrides: dict[str, str], expected: type[ProviderError]
) -> None:
    if overrides.get("base_url") == "refused":
        overrides = {"base_url": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(expected) as info:
        await make_client(**overrides).find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC))
    assert_private(info.value)


# --- delivery reports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("undelivered", [False, True])
async def test_delivery_report_arrives_with_basic_auth(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], receiver: Receiver, undelivered: bool
) -> None:
    state = sandbox[0]
    state.rng = random.Random(1)
    state.faults["infobip"] = Fault(undelivered_rate=1.0 if undelivered else 0.0)
    notify = f"{receiver.base_url}/callbacks/infobip/reports"
    await make_client(notify_url=notify).send_sms(NUMBER, BODY, reference=REF)
    await state.callbacks.drain()

    assert state.callbacks.failures == []
    [report] = receiver.received
    user, password = state.infobip_webhook_user, state.infobip_webhook_password
    assert report.url == notify
    assert (
        report.headers["Authorization"] == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    )
    [result] = report.json()["results"]
    assert (result["messageId"], result["callbackData"], result["to"]) == (REF, REF, "85291234567")
    assert result["smsCount"] == 1
    if undelivered:
        assert result["status"]["groupName"] == "UNDELIVERABLE"
        assert result["error"]["name"] in {"EC_ABSENT_SUBSCRIBER", "EC_UNKNOWN_SUBSCRIBER"}
        assert error_class(result["error"]["name"]) in {ProviderUnavailable, InvalidRecipient}
    else:
        assert (result["status"]["groupId"], result["status"]["name"]) == (3, "DELIVERED_TO_HANDSET")
        assert result["error"]["name"] == "NO_ERROR"
    found = await make_client().find_sent(NUMBER, BODY, reference=REF, since=datetime.now(UTC))
    assert found is not None
    assert found.status == result["status"]["name"]


# --- delivery_status: a send whose delivery report was lost ---------------------------------------


@pytest.mark.parametrize("undelivered", [False, True])
async def test_delivery_status_reads_the_log_without_any_report(
    make_client: MakeClient, sandbox: tuple[SandboxState, str], undelivered: bool
) -> None:
    state = sandbox[0]
    state.faults["infobip"] = Fault(undelivered_rate=1.0 if undelivered else 0.0)
    client = make_client()  # no notify URL: no report, yet the message reaches its final status
    await client.send_sms(NUMBER, BODY, reference=REF)
    await state.callbacks.drain()
    status = await client.delivery_status(REF, reference=REF)
    assert status is not None
    if undelivered:
        assert status.answer is Answer.UNDELIVERED
        assert status.code in {"EC_ABSENT_SUBSCRIBER", "EC_UNKNOWN_SUBSCRIBER"}
    else:
        assert (status.answer, status.code) == (Answer.DELIVERED, None)
    assert state.callbacks.sent == state.callbacks.failures == []
    assert await client.delivery_status(None, reference="never.1") is None


@pytest.mark.parametrize(
    ("group", "name", "error", "answer", "code"),
    [
        ("PENDING", "PENDING_ACCEPTED", "NO_ERROR", Answer.PENDING, None),
        ("DELIVERED", "DELIVERED_TO_HANDSET", "NO_ERROR", Answer.DELIVERED, None),
        ("UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED", "EC_UNKNOWN_SUBSCRIBER", Answer.UNDELIVERED, "EC_UNKNOWN_SUBSCRIBER"),
        ("EXPIRED", "EXPIRED_EXPIRED", "NO_ERROR", Answer.UNDELIVERED, "EXPIRED_EXPIRED"),
        ("REJECTED", "REJECTED_NETWORK", "NO_ERROR", Answer.UNDELIVERED, "REJECTED_NETWORK"),
    ],
)  # fmt: skip
async def test_delivery_status_reads_every_status_group_like_the_report_endpoint(
    session: aiohttp.ClientSession, canned_url: Any, *, group: str, name: str, error: str, answer: Answer, code: str | None
) -> None:  # fmt: skip
    entry = {
        "messageId": REF,
        "to": "85291234567",
        "status": {"groupName": group, "name": name},
        "error": {"name": error},
    }
    canned = Canned(200, {"results": [entry]})
    client = InfobipClient(session, base_url=await canned_url(canned), api_key=INFOBIP_KEY, sender=SENDER)
    status = await client.delivery_status(REF, reference=REF)
    assert status is not None
    assert (status.answer, status.code) == (answer, code)
    [(method, path, _, _)] = canned.requests
    assert (method, path) == ("GET", f"/sms/1/logs?messageId={REF}")


async def test_delivery_status_errors_are_translated(make_client: MakeClient) -> None:
    with pytest.raises(ProviderRejected):
        await make_client(api_key="wrong").delivery_status(REF, reference=REF)
    with pytest.raises(ProviderUnavailable):
        await make_client(base_url=f"http://127.0.0.1:{free_port()}").delivery_status(REF, reference=REF)
