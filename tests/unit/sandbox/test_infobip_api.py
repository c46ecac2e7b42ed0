"""The sandbox speaks Infobip's SMS API: v2 and v3 sends, logs, errors, and the official SDK (v3)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.sandbox.infobip import infobip_time
from service.sandbox.serve import Fault, SandboxState, create_app, run_sandbox
from tests.unit.sandbox.receiver import Receiver

KEY = "sandbox-infobip-key"
AUTH = {"Authorization": f"App {KEY}"}
NOW = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


def message(to: str = "85291234567", message_id: str | None = None, **extra: Any) -> dict[str, Any]:
    destination = {"to": to} | ({"messageId": message_id} if message_id else {})
    return {"destinations": [destination], "from": "Specialized", "text": "Hello", **extra}


@pytest.fixture
def state() -> SandboxState:
    ids = iter(f"{n:032x}" for n in range(1, 1000))
    return SandboxState("AC" + "0" * 32, "t", rng=random.Random(0), now=lambda: NOW, new_id=lambda: next(ids))


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(state), host="127.0.0.1")) as c:
        yield c


async def post(
    client: TestClient[Any, Any], body: Any, path: str = "/sms/2/text/advanced", **headers: str
) -> Any:
    resp = await client.post(path, json=body, headers=headers or AUTH)
    return resp.status, await resp.json(), resp.headers


async def test_many_messages_in_one_request(client: TestClient[Any, Any], state: SandboxState) -> None:
    body = {
        "messages": [
            message(message_id="r.0"),
            message("85298765432"),
            message("12", message_id="r.2"),
            message(""),
        ]
    }
    status, answer, _ = await post(client, body)

    assert status == 200
    assert answer["bulkId"] == f"{1:032x}"
    assert [
        (m["messageId"], m["to"], m["status"]["name"], m["status"]["groupId"]) for m in answer["messages"]
    ] == [
        ("r.0", "85291234567", "PENDING_ACCEPTED", 1),
        (f"{2:032x}", "85298765432", "PENDING_ACCEPTED", 1),
        ("r.2", "12", "REJECTED_DESTINATION", 5),
        (f"{3:032x}", "", "MISSING_TO", 5),
    ]
    assert [(m.provider, m.to, m.sid) for m in state.messages] == [
        ("infobip", "+85291234567", "r.0"),
        ("infobip", "+85298765432", f"{2:032x}"),
    ]


async def test_a_used_message_id_is_rejected_as_duplicate(client: TestClient[Any, Any]) -> None:
    await post(client, {"messages": [message(message_id="r.0")]})
    _, answer, _ = await post(client, {"messages": [message(message_id="r.0")]})
    assert answer["messages"][0]["status"]["name"] == "REJECTED_DUPLICATE_MESSAGE_ID"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/sms/2/text/advanced", {}),
        ("/sms/2/text/advanced", {"Authorization": "App wrong"}),
        ("/sms/2/text/advanced", {"Authorization": f"Basic {KEY}"}),
        ("/sms/3/messages", {"Authorization": f"Bearer {KEY}"}),
        ("/sms/1/logs", {}),
    ],
)
async def test_bad_credentials_are_401_in_infobips_format(
    client: TestClient[Any, Any], path: str, headers: dict[str, str]
) -> None:
    method = client.get if "logs" in path else client.post
    resp = await method(path, json={"messages": [message()]}, headers=headers or {"X": "1"})
    assert resp.status == 401
    body = await resp.json()
    if path.startswith("/sms/3/"):
        assert body["errorCode"] == "E401"
    else:
        assert body == {
            "requestError": {
                "serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}
            }
        }


@pytest.mark.parametrize(
    "body", ["not json", {"messages": []}, {"messages": [{"text": "no destinations"}]}, {"messages": [{"destinations": [{"to": "852"}]}]}, [1]]
)  # fmt: skip
async def test_malformed_requests_are_400(client: TestClient[Any, Any], body: Any) -> None:
    resp = await client.post(
        "/sms/2/text/advanced", data=body if isinstance(body, str) else json.dumps(body), headers=AUTH
    )
    assert resp.status == 400
    assert (await resp.json())["requestError"]["serviceException"]["messageId"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("code", "word"), [(429, "TOO_MANY_REQUESTS"), (500, "GENERAL_ERROR"), (403, "FORBIDDEN")]
)
async def test_http_faults(client: TestClient[Any, Any], state: SandboxState, code: int, word: str) -> None:
    state.set_fault("infobip", Fault(1.0, code, retry_after=6))
    status, body, headers = await post(client, {"messages": [message()]})
    assert (status, body["requestError"]["serviceException"]["messageId"]) == (code, word)
    assert headers.get("Retry-After") == ("6" if code == 429 else None)
    v3_status, v3_body, _ = await post(client, {"messages": [{"destinations": [{"to": "852"}], "content": {"text": "x"}}]}, "/sms/3/messages")  # fmt: skip
    assert (v3_status, v3_body["errorCode"]) == (code, f"E{code}")
    assert state.messages == []


async def test_logs_filter_by_message_id_bulk_and_limit(client: TestClient[Any, Any]) -> None:
    _, first, _ = await post(client, {"messages": [message(message_id="a"), message(message_id="b")]})
    await post(client, {"messages": [message(message_id="c")]})

    async def logs(**params: str) -> list[str]:
        resp = await client.get("/sms/1/logs", params=params, headers=AUTH)
        return [r["messageId"] for r in (await resp.json())["results"]]

    assert await logs() == ["c", "b", "a"]
    assert await logs(messageId="b") == ["b"]
    assert await logs(bulkId=first["bulkId"]) == ["b", "a"]
    assert await logs(limit="1") == ["c"]
    assert await logs(messageId="zzz") == []
    resp = await client.get("/sms/1/logs", params={"messageId": "a"}, headers=AUTH)
    [entry] = (await resp.json())["results"]
    assert entry["sentAt"] == "2025-03-04T05:06:07.890+0000"
    # No notify URL, so no report was posted: the message still reached its final status.
    assert (entry["to"], entry["text"], entry["smsCount"], entry["status"]["name"]) == ("85291234567", "Hello", 1, "DELIVERED_TO_HANDSET")  # fmt: skip


def test_infobip_time() -> None:
    assert infobip_time(NOW) == "2025-03-04T05:06:07.890+0000"


async def test_official_sdk_sends_reads_logs_and_parses_reports(receiver: Receiver) -> None:
    """infobip-api-python-client 6 speaks API v3: the sandbox serves it, the SDK's models read it all."""
    from infobip_api_client.api.sms_api import SmsApi
    from infobip_api_client.api_client import ApiClient
    from infobip_api_client.configuration import Configuration
    from infobip_api_client.exceptions import UnauthorizedException
    from infobip_api_client.models import (
        SmsDeliveryResult,
        SmsDestination,
        SmsMessage,
        SmsMessageContent,
        SmsMessageDeliveryReporting,
        SmsRequest,
        SmsTextContent,
        SmsWebhooks,
    )

    state = SandboxState("AC" + "0" * 32, "t", infobip_api_key=KEY, rng=random.Random(4))
    state.set_fault("infobip", Fault(undelivered_rate=0.5))
    runner = await run_sandbox("127.0.0.1", 0, state)
    host = f"http://127.0.0.1:{runner.addresses[0][1]}"
    notify = f"{receiver.base_url}/callbacks/infobip/reports"
    request = SmsRequest(
        messages=[
            SmsMessage(
                sender="Specialized",
                destinations=[SmsDestination(to=f"8529123456{n}", message_id=f"ref.{n}") for n in range(4)],
                content=SmsMessageContent(SmsTextContent(text="您的單車已到 👍")),
                webhooks=SmsWebhooks(
                    delivery=SmsMessageDeliveryReporting(url=notify), callback_data="batch-1"
                ),
            )
        ]
    )

    def use_sdk() -> tuple[Any, Any, int]:
        with ApiClient(Configuration(host=host, api_key=KEY, api_key_prefix="App")) as api_client:
            api = SmsApi(api_client)
            sent = api.send_sms_messages(request)
            logs = api.get_outbound_sms_message_logs(message_id=["ref.1", "ref.3"])
        with ApiClient(Configuration(host=host, api_key="wrong", api_key_prefix="App")) as bad_client:
            try:
                SmsApi(bad_client).send_sms_messages(request)
            except UnauthorizedException as exc:
                return sent, logs, exc.status
        raise AssertionError("a wrong key was accepted")

    try:
        sent, logs, bad_status = await asyncio.to_thread(use_sdk)
        await state.callbacks.drain()
    finally:
        await runner.cleanup()

    assert [m.message_id for m in sent.messages] == ["ref.0", "ref.1", "ref.2", "ref.3"]
    assert {m.status.name for m in sent.messages} == {"PENDING_ACCEPTED"}
    assert sent.messages[0].destination == "85291234560"
    assert sent.messages[0].details.message_count == 1
    assert sorted(entry.message_id for entry in logs.results) == ["ref.1", "ref.3"]
    assert logs.results[0].content.actual_instance.text == "您的單車已到 👍"
    assert bad_status == 401
    reports = [SmsDeliveryResult.from_json(r.body.decode()) for r in receiver.received]
    results = [result for report in reports for result in report.results]
    assert sorted(r.message_id for r in results) == ["ref.0", "ref.1", "ref.2", "ref.3"]
    assert {r.callback_data for r in results} == {"batch-1"}
    assert {r.status.group_name.value for r in results} == {"DELIVERED", "UNDELIVERABLE"}
    assert all(r.sent_at is not None and r.sent_at.tzinfo is not None for r in results)
    assert {r.error.name for r in results if r.status.group_name.value == "UNDELIVERABLE"} <= {
        "EC_ABSENT_SUBSCRIBER",
        "EC_UNKNOWN_SUBSCRIBER",
    }
