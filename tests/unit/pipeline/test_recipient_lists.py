"""Pilot mode and bad-number hygiene through the whole pipeline on fakes: a batch in, the sends the
providers saw and the receipts out."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from service.compose.render import Renderer
from service.domain import reasons
from service.domain.errors import InvalidRecipient
from service.domain.model import InboundRecord
from service.domain.references import MessageReferences
from service.metrics import Metrics
from service.pipeline.stages import build_stages
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.send.engine import DeliveryEngine
from service.testing import (
    FakeClock,
    FakeDeadLetterSink,
    FakeEmailSender,
    FakeReceiptSink,
    FakeSmsSender,
    FakeStore,
)
from tests.builders import event

REPO = Path(__file__).resolve().parents[3]
LISTED_PHONE, OTHER_PHONE, NEW_PHONE = "9123 4567", "9876 5432", "6123 4567"
LISTED_EMAIL, OTHER_EMAIL = "staff@example.com", "customer@example.com"


class Lists:
    """The stages on fakes, with the SMS provider named twilio (its codes are read as Twilio's)."""

    def __init__(self, *, pilot: bool = False, reports: int = 3) -> None:
        self.store = FakeStore()
        self.sms = FakeSmsSender(name="twilio")
        self.email = FakeEmailSender()
        self.metrics = Metrics()
        self.blind = BlindIndex(os.urandom(32))
        self.receipts = FakeReceiptSink()
        clock = FakeClock()
        engine = DeliveryEngine(
            sms=[self.sms],
            email=self.email,
            limits={},
            metrics=self.metrics,
            references=MessageReferences(self.blind.derive_key("message-reference")),
            clock=clock,
            sleep=clock.sleep,
            rng=random.Random(1),
        )
        renderer = Renderer(
            REPO / "templates",
            brand="Specialized",
            contact_phone="+852 3001 2345",
            contact_email="hk@example.com",
        )
        self.stages = build_stages(
            store=self.store,
            engine=engine,
            renderer=renderer,
            receipts=self.receipts,
            dead_letters=FakeDeadLetterSink(),
            metrics=self.metrics,
            blind_index=self.blind,
            keyring=Keyring({"k1": os.urandom(32)}, "k1"),
            pilot_mode=pilot,
            bad_number_reports=reports,
        )
        self.offset = 0

    async def feed(self, *values: bytes) -> None:
        records = []
        for v in values:
            records.append(InboundRecord("t", 0, self.offset, b"k", v, 1_700_000_000_000))
            self.offset += 1
        await self.stages.driver.process_batch(records)

    async def allow(self, *, phone: str | None = None, email: str | None = None) -> None:
        if phone is not None:
            await self.store.set_pilot(self.blind.phone(hk(phone)), "phone", listed=True, source="test")
        if email is not None:
            await self.store.set_pilot(self.blind.email(email), "email", listed=True, source="test")

    def receipts_of(self, order: str) -> list[dict[str, Any]]:
        return [d for d in (json.loads(r.payload) for r in self.receipts.published) if d["order_id"] == order]

    def texted(self) -> list[str]:
        return [to for to, _ in self.sms.sent]

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def report_last_sms(self, *, delivered: bool, code: str | None = None) -> str:
        return await self.stages.reports.report(
            "twilio", self.sms.references[-1], delivered=delivered, code=code
        )


def hk(number: str) -> str:
    return "+852" + number.replace(" ", "")


async def test_pilot_mode_texts_only_allow_listed_recipients() -> None:
    h = Lists(pilot=True)
    await h.allow(phone=LISTED_PHONE, email=LISTED_EMAIL)
    await h.feed(
        event("P-SMS", "ARRIVED_HK_WAREHOUSE", phone=LISTED_PHONE, email=OTHER_EMAIL),
        event("P-MAIL", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=LISTED_EMAIL),
        event("P-NONE", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL),
    )
    assert h.texted() == [hk(LISTED_PHONE)]  # never a customer who is not listed
    assert [to for to, _ in h.email.sent] == [LISTED_EMAIL]
    assert [(r["outcome"], r["channel"], r["reason"]) for r in h.receipts_of("P-SMS")] == [
        ("sent", "sms", None)
    ]
    assert [(r["outcome"], r["channel"], r["reason"]) for r in h.receipts_of("P-MAIL")] == [
        ("sent", "email", reasons.PILOT_PHONE_NOT_LISTED)
    ]
    assert [(r["outcome"], r["channel"], r["reason"]) for r in h.receipts_of("P-NONE")] == [
        ("suppressed_pilot", "none", reasons.PILOT_NOT_LISTED)
    ]
    assert h.metric("notifier_decisions_total", decision="suppressed_pilot") == 1
    published = b"".join(r.payload for r in h.receipts.published).decode()
    for personal in (OTHER_PHONE.replace(" ", ""), LISTED_PHONE.replace(" ", ""), OTHER_EMAIL, LISTED_EMAIL):
        assert personal not in published


async def test_without_pilot_mode_the_allow_list_changes_nothing() -> None:
    h = Lists(pilot=False)
    await h.allow(phone=LISTED_PHONE)
    await h.feed(event("O-1", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    assert h.texted() == [hk(OTHER_PHONE)]
    assert [r["outcome"] for r in h.receipts_of("O-1")] == ["sent"]


async def test_pilot_mode_sends_no_fallback_email_to_an_address_not_listed() -> None:
    h = Lists(pilot=True)
    await h.allow(phone=LISTED_PHONE)
    await h.feed(event("P-FB", "CUSTOMS_CLEARED", phone=LISTED_PHONE, email=OTHER_EMAIL))
    assert await h.report_last_sms(delivered=False, code="30003") == "undelivered_pilot"
    assert h.email.sent == []
    assert [(r["outcome"], r["reason"]) for r in h.receipts_of("P-FB")] == [
        ("sent", None),
        ("undelivered", "twilio_30003"),
        ("suppressed_pilot", reasons.PILOT_NOT_LISTED),
    ]
    assert h.metric("notifier_email_fallbacks_total", result="pilot") == 1


async def test_a_refused_number_is_not_texted_again_and_a_new_number_is() -> None:
    h = Lists()
    h.sms.errors.append(InvalidRecipient("twilio", "21211"))
    await h.feed(event("B-1", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    assert [(r["outcome"], r["channel"]) for r in h.receipts_of("B-1")] == [("sent", "email")]
    assert h.metric("notifier_bad_numbers_marked_total", why="refused") == 1

    await h.feed(event("B-1", "CUSTOMS_CLEARED", phone=OTHER_PHONE, email=OTHER_EMAIL))
    assert h.texted() == []  # straight to email: the provider is not asked again
    second = h.receipts_of("B-1")[-1]
    assert (second["milestone"], second["outcome"], second["channel"], second["reason"]) == (
        "customs_cleared",
        "sent",
        "email",
        reasons.BAD_NUMBER,
    )
    assert h.metric("notifier_bad_number_skips_total", then="email") == 1

    await h.feed(event("B-1", "READY_FOR_PICKUP", phone=NEW_PHONE, email=OTHER_EMAIL))
    assert h.texted() == [hk(NEW_PHONE)]  # the customer's new number clears it
    assert (h.receipts_of("B-1")[-1]["outcome"], h.receipts_of("B-1")[-1]["channel"]) == ("sent", "sms")


async def test_a_marked_number_without_an_email_is_suppressed_with_the_reason() -> None:
    h = Lists()
    await h.store.mark_number(h.blind.phone(hk(OTHER_PHONE)), "twilio_21211")
    await h.feed(event("B-2", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=None))
    assert h.texted() == []
    assert [(r["outcome"], r["reason"]) for r in h.receipts_of("B-2")] == [
        ("suppressed_invalid_recipient", reasons.BAD_NUMBER)
    ]
    assert h.metric("notifier_bad_number_skips_total", then="suppressed") == 1


async def test_undelivered_reports_in_a_row_mark_the_number_and_a_delivered_one_ends_the_streak() -> None:
    h = Lists(reports=2)
    await h.feed(event("U-1", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    await h.report_last_sms(delivered=False, code="30003")  # unreachable for now: one of a streak
    await h.feed(event("U-2", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    await h.report_last_sms(delivered=True)  # the streak ends
    await h.feed(event("U-3", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    await h.report_last_sms(delivered=False, code="30003")
    assert h.metric("notifier_bad_numbers_marked_total", why="repeated_undelivered") == 0
    await h.feed(event("U-4", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    await h.report_last_sms(delivered=False, code="30003")  # two in a row
    assert h.metric("notifier_bad_numbers_marked_total", why="repeated_undelivered") == 1
    await h.feed(event("U-5", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    assert len(h.texted()) == 4  # not the fifth
    assert (h.receipts_of("U-5")[-1]["channel"], h.receipts_of("U-5")[-1]["reason"]) == (
        "email",
        reasons.BAD_NUMBER,
    )


@pytest.mark.parametrize(("code", "marked"), [("30005", 1), ("30003", 0)])
async def test_a_permanent_undelivered_code_marks_the_number_at_once(code: str, marked: int) -> None:
    h = Lists(reports=3)
    await h.feed(event("K-1", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    await h.report_last_sms(delivered=False, code=code)
    assert h.metric("notifier_bad_numbers_marked_total", why="permanent_report") == marked
    await h.feed(event("K-2", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL))
    assert len(h.texted()) == 2 - marked


async def test_the_lists_paths_put_no_personal_data_in_receipts_logs_or_metrics() -> None:
    h = Lists(pilot=True, reports=1)
    await h.allow(phone=LISTED_PHONE)
    h.sms.errors.append(InvalidRecipient("twilio", "21211"))
    with capture_logs() as logs:
        await h.feed(
            event("L-1", "ARRIVED_HK_WAREHOUSE", phone=LISTED_PHONE, email=OTHER_EMAIL),  # refused: marked
            event("L-2", "ARRIVED_HK_WAREHOUSE", phone=OTHER_PHONE, email=OTHER_EMAIL),  # not listed
        )
        await h.feed(event("L-1", "CUSTOMS_CLEARED", phone=LISTED_PHONE, email=OTHER_EMAIL))  # marked
    outcomes = [
        (r["order_id"], r["outcome"], r["reason"])
        for r in (json.loads(x.payload) for x in h.receipts.published)
    ]
    assert outcomes == [
        ("L-1", "failed", "twilio_21211"),  # refused, and the email is not listed: nothing else
        ("L-2", "suppressed_pilot", reasons.PILOT_NOT_LISTED),
        ("L-1", "suppressed_invalid_recipient", reasons.BAD_NUMBER),
    ]
    text = "\n".join(r.payload.decode() for r in h.receipts.published) + "\n" + repr(logs)
    text += h.metrics.render().decode()
    for pii in (
        LISTED_PHONE,
        OTHER_PHONE,
        hk(LISTED_PHONE),
        hk(OTHER_PHONE),
        OTHER_EMAIL,
        "91234567",
        "98765432",
    ):
        assert pii not in text
    assert any(e["event"] == "number_marked_undeliverable" for e in logs)
