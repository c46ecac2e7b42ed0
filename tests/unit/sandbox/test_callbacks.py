"""Delivery callbacks: sent in the background, never blocking a response, failures recorded, drained on cleanup."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import pytest

from service.sandbox.core import Callbacks
from service.sandbox.serve import Fault, SandboxState
from service.send.providers.twilio import verify_twilio_signature
from tests.provider_servers import sandbox
from tests.unit.sandbox.receiver import Receiver
from tests.unit.send.providers.helpers import free_port

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TOKEN = "sandbox-token"
AUTH = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, TOKEN)}
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SEND = {"To": "+85291234567", "From": "+15005550006", "Body": "Your parcel is out for delivery"}


async def post_send(base: str, callback: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + MESSAGES, data={**SEND, "StatusCallback": callback}, headers=AUTH) as resp,
    ):
        return resp.status, await resp.json(), time.monotonic() - started


async def test_callbacks_do_not_hold_up_the_response_and_cleanup_awaits_them(receiver: Receiver) -> None:
    state = SandboxState(ACCOUNT_SID, TOKEN)
    state.set_fault("twilio", Fault(callback_delay_ms=150))
    callback = f"{receiver.base_url}/status"
    async with sandbox(state) as base:  # leaving it waits for the pending callbacks
        status, created, took = await post_send(base, callback)
        assert status == 201
        assert took < 0.15  # answered before the first callback was due
        assert state.callbacks.pending == 1
        assert receiver.received == []
    assert [r.form()["MessageStatus"] for r in receiver.received] == ["sent", "delivered"]
    assert state.callbacks.pending == 0
    assert [c.status for c in state.callbacks.sent] == [204, 204]
    assert state.resources[created["sid"]]["status"] == "delivered"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_undelivered_status_carries_an_error_code_and_updates_the_resource(
    receiver: Receiver, seed: int
) -> None:
    state = SandboxState(ACCOUNT_SID, TOKEN, rng=random.Random(seed))
    state.set_fault("twilio", Fault(undelivered_rate=1.0))
    async with sandbox(state) as base:
        _, created, _ = await post_send(base, f"{receiver.base_url}/status?tenant=hk")
        await state.callbacks.drain()
        async with (
            aiohttp.ClientSession() as session,
            session.get(base + created["uri"], headers=AUTH) as resp,
        ):
            fetched = await resp.json()
    sent, final = (r.form() for r in receiver.received)
    assert (sent["MessageStatus"], final["MessageStatus"]) == ("sent", "undelivered")
    assert final["ErrorCode"] in {"30003", "30005"}
    assert (fetched["status"], str(fetched["error_code"])) == ("undelivered", final["ErrorCode"])
    for r in receiver.received:
        assert r.url == f"{receiver.base_url}/status?tenant=hk"
        assert verify_twilio_signature(TOKEN, r.url, r.form(), r.headers["X-Twilio-Signature"])
        assert r.headers["I-Twilio-Idempotency-Token"]


async def test_failed_callbacks_are_recorded_not_raised(receiver: Receiver) -> None:
    receiver.status = 500
    state = SandboxState(ACCOUNT_SID, TOKEN)
    async with sandbox(state) as base:
        assert (await post_send(base, f"{receiver.base_url}/status"))[0] == 201
        assert (await post_send(base, f"http://127.0.0.1:{free_port()}/status"))[0] == 201
        await state.callbacks.drain()
        async with aiohttp.ClientSession() as session, session.get(f"{base}/sandbox/callbacks") as resp:
            listed = await resp.json()
    failures = state.callbacks.failures
    assert sorted((f.status or 0, f.error or "") for f in failures) == [
        (0, "ClientConnectorError"),
        (0, "ClientConnectorError"),
        (500, ""),
        (500, ""),
    ]
    assert listed["failed"] == [f.to_json() for f in failures]
    assert (listed["sent"], listed["pending"]) == ([], 0)


async def test_a_broken_callback_sequence_is_recorded() -> None:
    callbacks = Callbacks()

    async def broken() -> None:
        raise RuntimeError("bug")

    callbacks.spawn("infobip", broken())
    await callbacks.drain()
    assert [(f.provider, f.error) for f in callbacks.failures] == [("infobip", "RuntimeError")]
    await callbacks.aclose()


async def test_aclose_cancels_what_does_not_finish_in_time() -> None:
    callbacks = Callbacks()
    callbacks.spawn("twilio", asyncio.sleep(10))
    await callbacks.aclose(timeout_s=0.01)
    assert callbacks.pending == 0
