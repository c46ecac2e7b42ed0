"""Many concurrent sends to one provider, carried by one HTTP request (Infobip takes many messages).

On this machine the CPU cost of one HTTP request per SMS bounds the pipeline, so sends that are
in flight together share requests. The scheme adds no waiting of its own (no linger timer):

- sends made in the same turn of the event loop are gathered and go out together;
- at most ``max_requests`` requests are in flight; while they are, new sends queue, and the
  queue goes out (in groups of up to ``max_batch``) as soon as a request finishes.

So a lone send leaves at once, and under load groups grow by themselves to what arrives during
one round trip. Each caller still gets its own result or error, exactly as from a one-message
send, so the delivery engine (rate limit, retries, breaker, reconciliation by reference) is
unchanged. A failure of the whole request is every item's error. A caller cancelled while its
send is still queued is taken out of the queue: nothing is sent for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from service.domain.errors import ProviderError
from service.domain.ports import DeliveryStatus, SendAccepted

Item = tuple[str, str, str]  # (to E.164, body, reference)
_Queued = tuple[Item, "asyncio.Future[SendAccepted]"]


class ManySender(Protocol):
    name: str

    async def send_many(self, items: Sequence[Item]) -> list[SendAccepted | ProviderError]: ...

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None: ...

    async def delivery_status(self, message_id: str | None, *, reference: str) -> DeliveryStatus | None: ...


class BatchingSmsSender:
    """An ``SmsSender`` that groups concurrent sends into ``send_many`` requests."""

    def __init__(self, client: ManySender, *, max_batch: int = 50, max_requests: int = 2) -> None:
        if max_batch < 1 or max_requests < 1:
            raise ValueError("max_batch and max_requests must be >= 1")
        self.name = client.name
        self._client = client
        self._max = max_batch
        self._max_requests = max_requests
        self._waiting: list[_Queued] = []
        self._pump_due = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self.requests = 0  # how many HTTP requests carried the sends (for tests and the benchmark)

    async def send_sms(self, to_e164: str, body: str, *, reference: str) -> SendAccepted:
        loop = asyncio.get_running_loop()
        queued: _Queued = ((to_e164, body, reference), loop.create_future())
        self._waiting.append(queued)
        if not self._pump_due:  # let the other sends of this turn join first
            self._pump_due = True
            loop.call_soon(self._pump)
        try:
            return await queued[1]
        except asyncio.CancelledError:
            if queued in self._waiting:
                self._waiting.remove(queued)
            raise

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None:
        return await self._client.find_sent(to_e164, body, reference=reference, since=since)

    async def delivery_status(self, message_id: str | None, *, reference: str) -> DeliveryStatus | None:
        return await self._client.delivery_status(message_id, reference=reference)

    def _pump(self) -> None:
        self._pump_due = False
        while self._waiting and len(self._in_flight) < self._max_requests:
            group, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
            request = asyncio.get_running_loop().create_task(self._send(group))
            self._in_flight.add(request)
            request.add_done_callback(self._finished)

    def _finished(self, request: asyncio.Task[None]) -> None:
        self._in_flight.discard(request)
        self._pump()

    async def _send(self, group: list[_Queued]) -> None:
        self.requests += 1
        try:
            results = await self._client.send_many([item for item, _ in group])
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:  # never leave a caller waiting for ever
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if future.done():  # the caller was cancelled while its request was out
                continue
            if isinstance(result, ProviderError):
                future.set_exception(result)
            else:
                future.set_result(result)
