"""In-memory fakes of every port, for unit tests. They follow the real adapters' contracts."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.domain.errors import ProviderError
from service.domain.model import InboundRecord, ShipmentUpdate
from service.domain.outcome import Claimed, ClaimRequest, OutboxRow, Outcome
from service.domain.ports import DeadLetter, SendAccepted


@dataclass
class _Row:
    request: ClaimRequest
    state: str
    claims: int = 1
    outcome: Outcome | None = None


@dataclass
class FakeStore:
    """The store's semantics in memory: a unique (order, milestone), re-claim of unfinished claims, an outbox."""

    rows: dict[tuple[str, str], _Row] = field(default_factory=dict)
    events: dict[str, tuple[InboundRecord, ShipmentUpdate, str | None]] = field(default_factory=dict)
    outbox: dict[uuid.UUID, tuple[OutboxRow, bool]] = field(default_factory=dict)
    fail_next: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    async def record_events(self, events: Sequence[tuple[InboundRecord, ShipmentUpdate, str | None]]) -> None:
        self._maybe_fail()
        for e in events:
            self.events.setdefault(e[1].event_id, e)

    async def highest_ranks(self, order_ids: Sequence[str]) -> dict[str, int]:
        self._maybe_fail()
        out: dict[str, int] = {}
        for (order, _), row in self.rows.items():
            if order in order_ids:
                out[order] = max(out.get(order, 0), row.request.milestone.rank)
        return out

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claimed]:
        self._maybe_fail()
        granted = []
        for r in requests:
            key = (r.update.order_id, r.milestone.value)
            row = self.rows.get(key)
            if row is None:
                self.rows[key] = _Row(r, r.state)
                granted.append(Claimed(r.notification_id, 1))
            elif row.state == "claimed" and r.state == "claimed":
                row.claims += 1
                granted.append(Claimed(row.request.notification_id, row.claims))
        return granted

    async def finish(self, outcomes: Sequence[Outcome], receipts: Sequence[OutboxRow]) -> None:
        self._maybe_fail()
        by_id = {row.request.notification_id: row for row in self.rows.values()}
        for o in outcomes:
            row = by_id[o.notification_id]
            row.state, row.outcome = o.outcome, o
        for r in receipts:
            self.outbox.setdefault(r.receipt_id, (r, False))

    async def unpublished_receipts(self, limit: int = 1000, older_than_s: float = 0.0) -> list[OutboxRow]:
        return [r for r, published in self.outbox.values() if not published][:limit]

    async def mark_published(self, receipt_ids: Sequence[uuid.UUID]) -> None:
        for rid in receipt_ids:
            row, _ = self.outbox[rid]
            self.outbox[rid] = (row, True)


@dataclass
class FakeSmsSender:
    """Accepts every message (or raises the queued errors first) and remembers it."""

    name: str = "fake-sms"
    sent: list[tuple[str, str]] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def send_sms(self, to_e164: str, body: str) -> SendAccepted:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((to_e164, body))
        return SendAccepted(self.name, f"FAKE{next(self._ids):06d}", "queued")


@dataclass
class FakeReceiptSink:
    published: list[OutboxRow] = field(default_factory=list)
    fail: bool = False

    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        if self.fail:
            raise ConnectionError("fake broker down")
        self.published.extend(receipts)


@dataclass
class FakeDeadLetterSink:
    letters: list[DeadLetter] = field(default_factory=list)

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)
