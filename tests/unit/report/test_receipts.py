"""Receipts: each outcome's receipt (ids, codes and counts only), recorded and counted."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from service.domain.milestones import Milestone
from service.domain.model import notification_id, receipt_id
from service.domain.outcome import Outcome
from service.metrics import Metrics
from service.report.receipts import Receipts, receipt_row
from service.testing import FakeReceiptSink, FakeStore
from tests.builders import claim, update

MS = Milestone.ARRIVED_HK_WAREHOUSE
NID = notification_id("A", MS)
SENT = Outcome(
    NID,
    update("A"),
    MS,
    "sent",
    "sms",
    datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC),
    provider="sms-a",
    provider_message_id="SM123",
    locale="en",
    sms_encoding="GSM-7",
    sms_segments=2,
)


def test_a_receipt_carries_the_outcomes_ids_codes_and_counts() -> None:
    row = receipt_row(SENT)
    assert (row.receipt_id, row.notification_id, row.order_id) == (
        receipt_id(NID, "sent", "sms", "sms-a"),
        NID,
        "A",
    )
    doc = json.loads(row.payload)
    assert doc["receipt_id"] == str(row.receipt_id)
    assert (doc["order_id"], doc["waybill"], doc["event_id"], doc["milestone"]) == (
        "A",
        "WB",
        "A-e1",
        "arrived_hk_warehouse",
    )
    assert (doc["outcome"], doc["channel"], doc["provider"], doc["provider_message_id"]) == (
        "sent",
        "sms",
        "sms-a",
        "SM123",
    )
    assert (doc["locale"], doc["sms_encoding"], doc["sms_segments"], doc["reason"]) == (
        "en",
        "GSM-7",
        2,
        None,
    )


def test_a_receipt_id_tells_apart_the_channel_and_the_provider() -> None:
    ids = {
        receipt_row(SENT).receipt_id,
        receipt_row(dataclasses.replace(SENT, channel="email")).receipt_id,
        receipt_row(dataclasses.replace(SENT, provider="sms-b")).receipt_id,
    }
    assert len(ids) == 3


async def test_recorded_outcomes_are_counted_by_outcome_and_channel() -> None:
    store, m = FakeStore(), Metrics()
    await store.claim([claim("A")])
    await Receipts(store, FakeReceiptSink(), m).record([SENT])
    labels = {"outcome": "sent", "channel": "sms"}
    assert m.registry.get_sample_value("notifier_notifications_total", labels) == 1


async def test_a_recorded_report_is_counted_by_outcome_and_channel() -> None:
    store, sink, m = FakeStore(), FakeReceiptSink(), Metrics()
    await store.claim([claim("A")])
    ref = "A-ref-1"
    receipts = Receipts(store, sink, m)
    await receipts.record([dataclasses.replace(SENT, reference=ref)])
    delivered = dataclasses.replace(SENT, outcome="delivered", reference=ref)
    assert await receipts.record_report(delivered, ref) is True
    labels = {"outcome": "delivered", "channel": "sms"}
    assert m.registry.get_sample_value("notifier_notifications_total", labels) == 1
    assert [json.loads(r.payload)["outcome"] for r in sink.published] == ["sent", "delivered"]
    assert (await store.delivery_target(NID)).state == "delivered"  # type: ignore[union-attr]


def test_receipts_lease_their_publishes_for_a_minute_by_default() -> None:
    assert Receipts(FakeStore(), FakeReceiptSink(), Metrics()).outbox.lease().seconds == 60.0


def test_receipts_lease_their_publishes_for_as_long_as_configured() -> None:
    assert Receipts(FakeStore(), FakeReceiptSink(), Metrics(), lease_s=5).outbox.lease().seconds == 5
