"""Receipts: every outcome recorded with its receipt in one transaction, then published (``outbox``).

The one unit the dispatch of a notification, the batch driver and the delivery reports record
through; it also counts each recorded outcome in ``notifier_notifications``.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.contracts import ReceiptV1
from service.domain.follow_up_plan import FollowUpRef
from service.domain.lifecycle import State
from service.domain.model import receipt_id
from service.domain.outcome import OutboxRow, Outcome, SealedContact
from service.domain.ports import NotificationStore, ReceiptSink
from service.metrics import Metrics
from service.report.outbox import Outbox


def receipt_row(o: Outcome, follow_up: FollowUpRef | None = None) -> OutboxRow:
    """The receipt of an outcome, ready for the outbox. Ids, codes and counts only: no personal data.
    ``follow_up``: the outcome is a follow-up's (its id is ``o.notification_id``); the receipt names
    the pickup notice it follows, and its id is the follow-up's own."""
    rid = receipt_id(o.notification_id, o.outcome, o.channel, o.provider)
    notification = follow_up.notification_id if follow_up else o.notification_id
    receipt = ReceiptV1(
        receipt_id=rid,
        notification_id=notification,
        order_id=o.update.order_id,
        waybill=o.update.waybill,
        milestone=o.milestone.value,
        event_id=o.update.event_id,
        outcome=o.outcome,
        channel=o.channel,
        provider=o.provider,
        provider_message_id=o.provider_message_id,
        locale=o.locale,
        sms_encoding=o.sms_encoding,
        sms_segments=o.sms_segments,
        reason=o.reason,
        occurred_at=o.update.occurred_at,
        decided_at=o.decided_at,
        consent_state=o.consent.state.value if o.consent else None,
        consent_source=o.consent.source_kind if o.consent else None,  # the kind: never a name
        consent_set_at=o.consent.set_at if o.consent else None,
        scheduled_for=o.scheduled_for,
        follow_up=follow_up.kind.value if follow_up else None,
        follow_up_number=follow_up.number if follow_up else None,
    )
    return OutboxRow(rid, notification, o.update.order_id, receipt.to_bytes())


class Receipts:
    def __init__(
        self, store: NotificationStore, sink: ReceiptSink, metrics: Metrics, *, lease_s: float = 60.0
    ) -> None:
        self._metrics = metrics
        #: The one way receipts reach the topic; the periodic relay publishes what it left.
        self.outbox = Outbox(store, sink, lease_s=lease_s)

    async def record(self, outcomes: Sequence[Outcome], contacts: Sequence[SealedContact] = ()) -> None:
        """Make outcomes durable with their receipts (one transaction; a failure propagates), then
        publish the receipts."""
        if not outcomes:
            return
        await self.outbox.record(outcomes, [receipt_row(o) for o in outcomes], contacts)
        for o in outcomes:
            self._metrics.notifications.labels(o.outcome, o.channel).inc()

    async def record_report(
        self, reported: Outcome, reference: str, *, fallback_in_s: float | None = None
    ) -> bool:
        """Record a provider's report on the attempt ``reference`` names with its receipt, then
        publish it; False when the attempt is no longer current (stale)."""
        if not await self.outbox.record_delivery(
            reported.notification_id,
            reference,
            State(reported.outcome),
            reported.reason,
            receipt_row(reported),
            fallback_in_s=fallback_in_s,
        ):
            return False
        self._metrics.notifications.labels(reported.outcome, reported.channel).inc()
        return True

    async def relay(self) -> int:
        """Publish receipts nobody holds (their writer died, or a publish failed)."""
        return await self.outbox.relay()
