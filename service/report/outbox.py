"""The receipt outbox: the one way a receipt reaches the topic, in the order its outcomes happened, once.

A receipt is written to the outbox in the transaction that records its outcome, *born leased* to
the operation that wrote it (a send, a delivery report, an email fallback), and that operation
publishes it at once. The rules, kept by the store for every instance sharing the database:

- a notification's receipts are published in the order they were written (their sequence), and
  all of its unpublished rows are taken together, by whoever may take the first of them (free,
  or its own): a row behind an earlier row someone else holds waits, and whoever publishes that
  earlier row publishes it next (its writer may have looked before, and left it);
- a row is taken only under a lease (owner, expiry): no one takes rows another operation holds,
  so the relay cannot race a batch in flight; it takes only rows whose lease is over (the writer
  died) or given back (the publish failed).

The receipts topic is keyed by order, so a notification's receipts share a partition, and the
idempotent producer keeps them in order there. A receipt is published twice only if the broker
took it but the acknowledgement was lost, or the database could not record the publication:
then the relay publishes it again (consumers dedup by ``receipt_id``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Sequence

from service.domain.errors import NotifierError
from service.domain.lifecycle import State
from service.domain.outcome import Lease, OutboxRow, Outcome, SealedContact
from service.domain.ports import NotificationStore, ReceiptSink
from service.logs import get_logger

log = get_logger(__name__)


class Outbox:
    def __init__(
        self, store: NotificationStore, sink: ReceiptSink, *, lease_s: float = 60.0, name: str | None = None
    ) -> None:
        self._store = store
        self._sink = sink
        self._lease_s = lease_s
        self._name = name or f"{socket.gethostname()}:{os.getpid()}"

    def lease(self) -> Lease:
        """A lease for one publishing operation (unique: two operations never share one)."""
        return Lease(f"{self._name}:{uuid.uuid4().hex[:12]}", self._lease_s)

    async def record(
        self, outcomes: Sequence[Outcome], rows: Sequence[OutboxRow], contacts: Sequence[SealedContact] = ()
    ) -> None:
        """Record outcomes with their receipts (one transaction; a failure propagates), then publish."""
        lease = self.lease()
        await self._store.finish(outcomes, rows, contacts, lease=lease)
        await self.publish(lease, (r.notification_id for r in rows))

    async def record_delivery(
        self,
        notification: uuid.UUID,
        reference: str,
        state: State,
        reason: str | None,
        row: OutboxRow,
        *,
        fallback_in_s: float | None = None,
    ) -> bool:
        """Record a provider's report on an attempt with its receipt, then publish; False when stale."""
        lease = self.lease()
        if not await self._store.record_delivery(
            notification, reference, state, reason, row, fallback_in_s=fallback_in_s, lease=lease
        ):
            return False
        await self.publish(lease, [notification])
        return True

    async def publish(self, lease: Lease, notifications: Iterable[uuid.UUID]) -> int:
        """Publish what these notifications have ready; returns how many receipts went out.

        Never raises: what cannot be published now stays in the outbox for the relay.
        """
        try:
            rows = await self._store.take_receipts(lease, sorted(set(notifications)))
            published, _ = await self._drain(lease, rows)
        except NotifierError as exc:  # the database is gone: the leases run out, the relay takes them
            log.warning("receipts_publish_deferred", error=type(exc).__name__)
            return 0
        return published

    async def relay(self, limit: int = 200) -> int:
        """Publish receipts nobody holds (a writer died, or a publish failed). Returns how many."""
        total = 0
        while True:
            lease = self.lease()
            rows = await self._store.take_receipts(lease, None, limit)
            if not rows:
                break
            published, ok = await self._drain(lease, rows)
            total += published
            if not ok:
                break
        if total:
            log.info("outbox_relayed", count=total)
        return total

    async def _drain(self, lease: Lease, rows: list[OutboxRow]) -> tuple[int, bool]:
        """Publish taken rows, mark them, and go on with the rows that waited behind them."""
        published = 0
        while rows:
            try:
                await self._sink.publish(rows)
            except Exception as exc:  # any publish failure leaves the rows for the relay
                log.warning(
                    "receipts_publish_deferred",
                    count=len(rows),
                    error=type(exc).__name__,
                    cause=type(exc.__cause__).__name__ if exc.__cause__ else None,  # e.g. the Kafka error
                )
                await self._store.release_receipts(lease, [r.receipt_id for r in rows])
                return published, False
            published += len(rows)
            rows = await self._store.complete_receipts(lease, rows)
        return published, True
