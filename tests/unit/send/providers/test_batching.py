"""Concurrent sends grouped into one provider request, each caller getting its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from service.domain.errors import InvalidRecipient, ProviderError
from service.domain.ports import SendAccepted
from service.send.providers.batching import BatchingSmsSender, Item


class FakeMany:
    name = "many"

    def __init__(self) -> None:
        self.requests: list[list[Item]] = []
        self.invalid: set[str] = set()
        self.crash = False
        self.gate: asyncio.Event | None = None  # when set up, requests wait for it

    async def send_many(self, items: Sequence[Item]) -> list[SendAccepted | ProviderError]:
        self.requests.append(list(items))
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.crash:
            raise RuntimeError("bug")
        return [
            InvalidRecipient(self.name, "EC_INVALID")
            if to in self.invalid
            else SendAccepted(self.name, ref, "PENDING")
            for to, _, ref in items
        ]

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None:
        return None


def send(sender: BatchingSmsSender, i: int) -> asyncio.Task[SendAccepted]:
    return asyncio.create_task(sender.send_sms(f"+8529000000{i}", "hi", reference=f"r{i}"))


async def test_sends_made_together_go_out_in_one_request_with_one_result_each() -> None:
    client = FakeMany()
    sender = BatchingSmsSender(client, max_batch=50)
    results = await asyncio.gather(*(send(sender, i) for i in range(5)))
    assert [r.message_id for r in results] == [f"r{i}" for i in range(5)]
    assert len(client.requests) == 1
    assert sender.requests == 1


async def test_a_refused_item_fails_only_its_own_caller() -> None:
    client = FakeMany()
    client.invalid.add("+85290000001")
    sender = BatchingSmsSender(client)
    results = await asyncio.gather(*(send(sender, i) for i in range(3)), return_exceptions=True)
    assert isinstance(results[1], InvalidRecipient)
    assert [type(r) for r in (results[0], results[2])] == [SendAccepted, SendAccepted]


async def test_groups_never_exceed_the_maximum() -> None:
    client = FakeMany()
    sender = BatchingSmsSender(client, max_batch=2, max_requests=5)
    await asyncio.gather(*(send(sender, i) for i in range(5)))
    assert [len(r) for r in client.requests] == [2, 2, 1]


async def test_a_lone_send_goes_out_at_once_without_waiting_for_company() -> None:
    client = FakeMany()
    client.gate = asyncio.Event()
    sender = BatchingSmsSender(client)
    task = send(sender, 0)
    for _ in range(4):  # a few turns of the loop, no time passing
        await asyncio.sleep(0)
    assert client.requests == [[("+85290000000", "hi", "r0")]]  # no timer: already on its way
    client.gate.set()
    assert (await task).message_id == "r0"


async def one_request_out() -> tuple[FakeMany, BatchingSmsSender, asyncio.Task[SendAccepted]]:
    """A sender allowed one request at a time, with that request out (held at the provider)."""
    client = FakeMany()
    client.gate = asyncio.Event()
    sender = BatchingSmsSender(client, max_requests=1)
    first = send(sender, 0)
    await asyncio.sleep(0.01)
    return client, sender, first


async def test_sends_made_while_the_requests_are_out_queue_and_leave_together() -> None:
    client, sender, first = await one_request_out()
    later = []
    for i in range(1, 4):  # in separate turns of the loop
        later.append(send(sender, i))
        await asyncio.sleep(0.001)
    assert len(client.requests) == 1  # the one request allowed is out: the others wait
    client.gate.set()
    await asyncio.gather(first, *later)
    assert [[ref for _, _, ref in r] for r in client.requests] == [["r0"], ["r1", "r2", "r3"]]


async def test_a_send_cancelled_while_queued_is_never_sent() -> None:
    client, sender, first = await one_request_out()
    doomed, kept = send(sender, 1), send(sender, 2)
    await asyncio.sleep(0.01)
    doomed.cancel()
    await asyncio.sleep(0)
    client.gate.set()
    await asyncio.gather(first, kept)
    assert doomed.cancelled()
    assert [[ref for _, _, ref in r] for r in client.requests] == [["r0"], ["r2"]]


async def test_an_unexpected_failure_reaches_every_caller_instead_of_hanging() -> None:
    client = FakeMany()
    client.crash = True
    sender = BatchingSmsSender(client)
    results = await asyncio.gather(*(send(sender, i) for i in range(2)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


@pytest.mark.parametrize("kw", [{"max_batch": 0}, {"max_requests": 0}])
def test_nonsense_settings_are_refused(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        BatchingSmsSender(FakeMany(), **kw)
