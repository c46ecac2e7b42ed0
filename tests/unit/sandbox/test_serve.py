"""The sandbox speaks Twilio's Messages API: resources, errors, control endpoints, the official SDK."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.sandbox.serve import (
    Fault,
    RecordedMessage,
    SandboxState,
    count_segments,
    create_app,
    run_sandbox,
)
from service.sandbox.twilio import accept

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TOKEN = "sandbox-token"
AUTH = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, TOKEN)}
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SEND = {"To": "+85291234567", "From": "+15005550006", "Body": "Your parcel is out for delivery"}
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
MONO = 4242.5

#: The properties of ``api.v2010.account.message`` in Twilio's OpenAPI spec (twilio-oai).
MESSAGE_PROPERTIES = {
    "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated", "direction",
    "error_code", "error_message", "from", "messaging_service_sid", "num_media", "num_segments",
    "price", "price_unit", "sid", "status", "subresource_uris", "to", "uri",
}  # fmt: skip


def make_state(seed: int = 0) -> SandboxState:
    ids = iter(f"{n:032x}" for n in range(1, 1000))
    return SandboxState(
        ACCOUNT_SID,
        TOKEN,
        rng=random.Random(seed),
        now=lambda: NOW,
        monotonic=lambda: MONO,
        new_id=lambda: next(ids),
    )


@pytest.fixture
def state() -> SandboxState:
    return make_state()


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(state), host="127.0.0.1")) as c:
        yield c


async def send(client: TestClient[Any, Any], form: dict[str, str] | None = None, **headers: str) -> Any:
    resp = await client.post(MESSAGES, data=SEND if form is None else form, headers=headers or AUTH)
    return resp.status, await resp.json(), resp.headers


async def test_send_returns_twilio_message_resource(
    client: TestClient[Any, Any], state: SandboxState
) -> None:
    status, body, headers = await send(client)

    assert status == 201
    assert headers["Content-Type"].startswith("application/json")
    assert set(body) == MESSAGE_PROPERTIES
    sid = "SM" + "0" * 31 + "1"
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}"
    assert body == {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": SEND["Body"],
        "date_created": "Tue, 04 Mar 2025 05:06:07 +0000",
        "date_sent": "Tue, 04 Mar 2025 05:06:07 +0000",
        "date_updated": "Tue, 04 Mar 2025 05:06:07 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": SEND["From"],
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": SEND["To"],
        "uri": f"{uri}.json",
    }
    assert parsedate_to_datetime(body["date_created"]) == NOW
    assert state.messages == [
        RecordedMessage("twilio", sid, SEND["To"], SEND["From"], SEND["Body"], NOW, MONO)
    ]
    listed = await (await client.get("/sandbox/messages")).json()
    assert listed == [
        {
            "provider": "twilio",
            "sid": sid,
            "to": SEND["To"],
            "from": SEND["From"],
            "body": SEND["Body"],
            "subject": None,
            "reference": None,
            "received_at": NOW.isoformat(),
            "received_mono": MONO,
        }
    ]


async def test_default_sids_look_like_twilio_sids() -> None:
    state = SandboxState(ACCOUNT_SID, TOKEN)
    resource = accept(state, SEND["To"], SEND["From"], SEND["Body"], None)
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])
    assert parsedate_to_datetime(resource["date_created"]).tzinfo is not None
    assert TOKEN not in repr(state)


async def test_messaging_service_without_from_is_accepted(client: TestClient[Any, Any]) -> None:
    service_sid = "MG" + "a" * 32
    form = {"To": SEND["To"], "Body": "hi", "MessagingServiceSid": service_sid}
    status, body, _ = await send(client, form)
    assert status == 201
    assert (body["status"], body["messaging_service_sid"], body["from"]) == ("accepted", service_sid, None)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-auth"),
        pytest.param({"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, "wrong")}, id="wrong-token"),
        pytest.param({"Authorization": aiohttp.encode_basic_auth("AC" + "f" * 32, TOKEN)}, id="wrong-sid"),
        pytest.param({"Authorization": "Bearer abc"}, id="not-basic"),
        pytest.param({"Authorization": "Basic !!!"}, id="bad-base64"),
    ],
)
async def test_bad_credentials_get_twilio_20003(
    client: TestClient[Any, Any], state: SandboxState, headers: dict[str, str]
) -> None:
    resp = await client.post(MESSAGES, data=SEND, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert await resp.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert state.messages == []


async def test_path_account_must_match_credentials(client: TestClient[Any, Any]) -> None:
    other = "AC" + "f" * 32
    resp = await client.post(f"/2010-04-01/Accounts/{other}/Messages.json", data=SEND, headers=AUTH)
    assert resp.status == 401
    assert (await resp.json())["code"] == 20003


@pytest.mark.parametrize(
    ("missing", "code"),
    [("To", 21604), ("Body", 21602), ("From", 21603)],
)
async def test_missing_parameter_is_400(client: TestClient[Any, Any], missing: str, code: int) -> None:
    form = {k: v for k, v in SEND.items() if k != missing}
    status, body, _ = await send(client, form)
    assert status == 400
    assert (body["code"], body["status"]) == (code, 400)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


@pytest.mark.parametrize(
    "to", ["85291234567", "+0123456789", "+123456", "+1234567890123456", "+852 9123 4567"]
)
async def test_non_e164_number_is_21211(client: TestClient[Any, Any], to: str) -> None:
    status, body, _ = await send(client, {**SEND, "To": to})
    assert (status, body["code"]) == (400, 21211)
    assert to in body["message"]  # Twilio echoes the number: the reason our client never reads it


@pytest.mark.parametrize("to", ["+1234567", "+852912345678901"])
async def test_e164_length_limits(client: TestClient[Any, Any], to: str) -> None:
    status, _, _ = await send(client, {**SEND, "To": to})
    assert status == 201


async def test_fetch_returns_stored_resource(client: TestClient[Any, Any]) -> None:
    _, created, _ = await send(client)
    resp = await client.get(created["uri"], headers=AUTH)
    assert resp.status == 200
    # With no StatusCallback nobody is called back, yet the message goes on to its final status.
    fetched = await resp.json()
    assert fetched.pop("status") == "delivered"
    assert fetched == {k: v for k, v in created.items() if k != "status"}


async def test_fetch_unknown_is_20404(client: TestClient[Any, Any]) -> None:
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'9' * 32}.json"
    resp = await client.get(path, headers=AUTH)
    assert resp.status == 404
    body = await resp.json()
    assert (body["code"], body["status"]) == (20404, 404)
    assert path in body["message"]


async def test_fetch_requires_auth(client: TestClient[Any, Any]) -> None:
    _, created, _ = await send(client)
    resp = await client.get(created["uri"])
    assert resp.status == 401


async def test_control_lists_in_order_and_clears(client: TestClient[Any, Any]) -> None:
    for n in range(3):
        await send(client, {**SEND, "Body": f"message {n}"})

    listed = await (await client.get("/sandbox/messages")).json()
    assert [m["body"] for m in listed] == ["message 0", "message 1", "message 2"]
    assert {m["provider"] for m in listed} == {"twilio"}

    assert (await client.delete("/sandbox/messages")).status == 204
    assert await (await client.get("/sandbox/messages")).json() == []
    assert (await client.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{listed[0]['sid']}.json", headers=AUTH)).status == 404  # fmt: skip


@pytest.mark.parametrize(
    ("error_code", "status", "code"),
    [(500, 500, 20500), (503, 503, 20503), (429, 429, 20429), (30008, 400, 30008), (20429, 429, 20429)],
)
async def test_injected_fault_answers_twilio_error(
    client: TestClient[Any, Any], state: SandboxState, error_code: int, status: int, code: int
) -> None:
    resp = await client.put("/sandbox/faults/twilio", json={"error_code": error_code, "retry_after": 4})
    assert resp.status == 200
    assert await resp.json() == {
        "error_rate": 1.0,
        "error_code": error_code,
        "latency_ms": 0.0,
        "retry_after": 4,
        "outage_s": 0.0,
        "undelivered_rate": 0.0,
        "callback_delay_ms": 0.0,
    }

    got_status, body, headers = await send(client)

    assert (got_status, body["code"], body["status"]) == (status, code, status)
    assert headers.get("Retry-After") == ("4" if status == 429 else None)
    assert state.messages == []


async def test_429_always_has_retry_after(client: TestClient[Any, Any]) -> None:
    await client.put("/sandbox/faults/twilio", json={"error_code": 429})
    _, _, headers = await send(client)
    assert headers["Retry-After"] == "1"


async def test_clearing_the_fault_restores_service(client: TestClient[Any, Any]) -> None:
    await client.put("/sandbox/faults/twilio", json={"error_code": 503})
    assert (await send(client))[0] == 503
    assert (await client.delete("/sandbox/faults/twilio")).status == 204
    assert (await send(client))[0] == 201


async def test_error_rate_fails_a_share_of_sends() -> None:
    state = make_state(seed=42)
    state.fault = Fault(error_rate=0.5, error_code=503)
    async with TestClient(TestServer(create_app(state), host="127.0.0.1")) as client:
        statuses = [(await send(client))[0] for _ in range(40)]
    assert set(statuses) == {201, 503}
    assert len(state.messages) == statuses.count(201)


async def test_latency_delays_sends(client: TestClient[Any, Any]) -> None:
    await client.put("/sandbox/faults/twilio", json={"latency_ms": 100})
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await send(client)
    assert status == 201  # latency alone does not fail
    assert loop.time() - started >= 0.09


@pytest.mark.parametrize(
    "payload",
    [
        {"error_rate": 2},
        {"error_rate": "half"},
        {"error_code": 42},
        {"error_code": True},
        {"latency_ms": -1},
        {"retry_after": 1.5},
        {"unknown": 1},
        [1, 2],
    ],
)
async def test_bad_fault_is_400(client: TestClient[Any, Any], state: SandboxState, payload: object) -> None:
    resp = await client.put("/sandbox/faults/twilio", json=payload)
    assert resp.status == 400
    assert "error" in await resp.json()
    assert state.fault is None


async def test_fault_body_must_be_json(client: TestClient[Any, Any]) -> None:
    resp = await client.put("/sandbox/faults/twilio", data="not json")
    assert resp.status == 400


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("你" * 70, 1),
        ("你" * 71, 2),
        ("👍" * 35, 1),  # two UTF-16 units each
        ("👍" * 36, 2),
        ("a" * 159 + "你", 3),  # one non-GSM character makes the whole text UCS-2
    ],
)
def test_count_segments(text: str, segments: int) -> None:
    assert count_segments(text) == segments


async def test_run_sandbox_serves_on_an_ephemeral_port() -> None:
    state = make_state()
    runner = await run_sandbox("127.0.0.1", 0, state)
    try:
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/sandbox/messages") as resp,
        ):
            assert resp.status == 200
            assert await resp.json() == []
    finally:
        await runner.cleanup()


async def test_official_twilio_sdk_accepts_sandbox_responses() -> None:
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    state = SandboxState(ACCOUNT_SID, TOKEN)
    runner = await run_sandbox("127.0.0.1", 0, state)
    sdk = Client(ACCOUNT_SID, TOKEN, environment={})  # environment={}: ignore TWILIO_* of the caller
    sdk.api.base_url = "http://{}:{}".format(*runner.addresses[0][:2])
    try:
        message = await asyncio.to_thread(
            sdk.messages.create, to=SEND["To"], from_=SEND["From"], body="Hi 👍"
        )
        fetched = await asyncio.to_thread(sdk.messages(message.sid).fetch)
        with pytest.raises(TwilioRestException) as info:
            await asyncio.to_thread(sdk.messages.create, to="12345", from_=SEND["From"], body="x")
        bad_auth = Client(ACCOUNT_SID, "wrong", environment={})
        bad_auth.api.base_url = sdk.api.base_url
        with pytest.raises(TwilioRestException) as auth_info:
            await asyncio.to_thread(bad_auth.messages.create, to=SEND["To"], from_=SEND["From"], body="x")
        bad_auth.http_client.session.close()
    finally:
        sdk.http_client.session.close()
        await runner.cleanup()

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.to == SEND["To"]
    assert message.from_ == SEND["From"]
    assert message.body == "Hi 👍"
    assert message.num_segments == "1"
    assert message.direction == "outbound-api"
    assert isinstance(message.date_created, datetime)
    assert message.date_created.tzinfo is not None
    assert message.account_sid == ACCOUNT_SID
    assert (fetched.sid, fetched.status, fetched.to) == (message.sid, "delivered", SEND["To"])
    assert [m.sid for m in state.messages] == [message.sid]
    assert (info.value.status, info.value.code) == (400, 21211)
    assert (auth_info.value.status, auth_info.value.code) == (401, 20003)


# --- the message list (Twilio's), and the control endpoints for every provider ---------------------------


async def send_to(client: TestClient[Any, Any], to: str, body: str) -> str:
    status, created, _ = await send(client, {**SEND, "To": to, "Body": body})
    assert status == 201
    return str(created["sid"])


async def test_list_filters_by_to_and_date_newest_first(client: TestClient[Any, Any]) -> None:
    first = await send_to(client, "+85291234567", "one")
    await send_to(client, "+85298765432", "other number")
    last = await send_to(client, "+85291234567", "two")

    for date_filter in (
        {"DateSent>": "2025-03-04"},
        {"DateSent>": "2025-03-04T05:00:00Z"},
        {"DateSent": "2025-03-04"},
    ):
        resp = await client.get(MESSAGES, params={"To": "+85291234567", **date_filter}, headers=AUTH)
        page = await resp.json()
        assert [m["sid"] for m in page["messages"]] == [last, first], date_filter
    for date_filter in ({"DateSent>": "2025-03-05"}, {"DateSent<": "2025-03-03"}, {"DateSent": "2025-03-03"}):
        resp = await client.get(MESSAGES, params={"To": "+85291234567", **date_filter}, headers=AUTH)
        assert (await resp.json())["messages"] == [], date_filter


async def test_list_pages_like_twilio(client: TestClient[Any, Any]) -> None:
    sids = [await send_to(client, "+85291234567", f"m{n}") for n in range(5)]
    resp = await client.get(
        MESSAGES, params={"To": "+85291234567", "DateSent>": "2025-03-04", "PageSize": "2"}, headers=AUTH
    )
    page = await resp.json()
    seen = [m["sid"] for m in page["messages"]]
    assert (page["page"], page["page_size"], page["start"], page["end"], page["previous_page_uri"]) == (
        0,
        2,
        0,
        1,
        None,
    )
    assert page["uri"] == f"{MESSAGES}?To=%2B85291234567&DateSent%3E=2025-03-04&PageSize=2&Page=0"
    while page["next_page_uri"]:
        page = await (await client.get(page["next_page_uri"], headers=AUTH)).json()
        seen += [m["sid"] for m in page["messages"]]
    assert seen == sids[::-1]
    assert (page["page"], page["start"], page["end"]) == (2, 4, 4)
    assert page["previous_page_uri"].endswith(
        "PageSize=2&Page=1&PageToken=PA0123456789abcdef0123456789abcdef1"
    )


@pytest.mark.parametrize(
    "params",
    [{"DateSent>": "yesterday"}, {"PageSize": "0"}, {"PageSize": "1001"}, {"Page": "-1"}, {"Page": "x"}],
)
async def test_list_rejects_bad_parameters(client: TestClient[Any, Any], params: dict[str, str]) -> None:
    resp = await client.get(MESSAGES, params=params, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["code"] == 20001


async def test_list_requires_auth(client: TestClient[Any, Any]) -> None:
    assert (await client.get(MESSAGES)).status == 401


@pytest.mark.parametrize("callback", ["ftp://n.example/cb", "not a url", "http:///no-host"])
async def test_bad_status_callback_is_21609(client: TestClient[Any, Any], callback: str) -> None:
    status, body, _ = await send(client, {**SEND, "StatusCallback": callback})
    assert (status, body["code"]) == (400, 21609)


async def test_messages_of_every_provider_filtered_by_provider(
    client: TestClient[Any, Any], state: SandboxState
) -> None:
    state._monotonic = iter([1.0, 2.5, 4.0]).__next__  # a clock that moves
    await send(client)
    state.record("infobip", "ib-1", "+85291234567", "Specialized", "hi", reference="r.1")
    state.record("sendgrid", "sg-1", "a@example.com", "n@example.com", "text", reference="r.2", subject="S")

    everything = await (await client.get("/sandbox/messages")).json()
    assert [(m["provider"], m["received_mono"]) for m in everything] == [
        ("twilio", 1.0),
        ("infobip", 2.5),
        ("sendgrid", 4.0),
    ]
    assert datetime.fromisoformat(everything[1]["received_at"]) == NOW
    only = await (await client.get("/sandbox/messages", params={"provider": "sendgrid"})).json()
    assert [(m["sid"], m["to"], m["subject"], m["reference"]) for m in only] == [
        ("sg-1", "a@example.com", "S", "r.2")
    ]
    assert (await client.get("/sandbox/messages", params={"provider": "vonage"})).status == 400

    assert (await client.delete("/sandbox/messages")).status == 204
    assert state.messages == []


async def test_faults_per_provider(client: TestClient[Any, Any], state: SandboxState) -> None:
    assert (await client.put("/sandbox/faults/infobip", json={"error_code": "REJECTED_SENDER"})).status == 200
    assert (
        await client.put("/sandbox/faults/sendgrid", json={"latency_ms": {"p50": 10, "p99": 40}})
    ).status == 200
    assert (await client.put("/sandbox/faults/vonage", json={})).status == 404
    faults = await (await client.get("/sandbox/faults")).json()
    assert faults["infobip"]["error_code"] == "REJECTED_SENDER"
    assert faults["sendgrid"]["latency_ms"] == {"p50": 10.0, "p99": 40.0}
    assert "twilio" not in faults
    assert (await send(client))[0] == 201  # Infobip's fault is not Twilio's

    assert (await client.delete("/sandbox/faults/infobip")).status == 204
    assert set(state.faults) == {"sendgrid"}


@pytest.mark.parametrize(
    ("provider", "payload"),
    [
        ("twilio", {"error_code": "REJECTED_SENDER"}),
        ("infobip", {"error_code": 21211}),
        ("infobip", {"error_code": "EC_NOT_A_STATUS"}),
        ("sendgrid", {"error_code": 30008}),
        ("sendgrid", {"error_code": "bounce"}),
    ],
)
async def test_fault_codes_are_per_provider(
    client: TestClient[Any, Any], provider: str, payload: object
) -> None:
    resp = await client.put(f"/sandbox/faults/{provider}", json=payload)
    assert resp.status == 400


async def test_official_twilio_sdk_lists_with_its_own_date_format() -> None:
    from twilio.rest import Client

    state = SandboxState(ACCOUNT_SID, TOKEN)
    runner = await run_sandbox("127.0.0.1", 0, state)
    sdk = Client(ACCOUNT_SID, TOKEN, environment={})
    sdk.api.base_url = "http://{}:{}".format(*runner.addresses[0][:2])
    try:
        for n in range(3):
            await asyncio.to_thread(sdk.messages.create, to=SEND["To"], from_=SEND["From"], body=f"m{n}")
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        listed = await asyncio.to_thread(sdk.messages.list, to=SEND["To"], date_sent_after=since, page_size=2)
    finally:
        sdk.http_client.session.close()
        await runner.cleanup()
    assert [m.body for m in listed] == ["m2", "m1", "m0"]  # the SDK followed next_page_uri
