"""The text a customer received, as staff see it: rendered again, name masked, no phone, email or link."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.compose.render import Renderer
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.http.support_desk import SupportDesk, mask_name, timeline
from service.privacy.crypto import Keyring
from service.store.staff import SupportRow

REPO = Path(__file__).resolve().parents[3]
ORDER = "SO-HK-24001"
NID = notification_id(ORDER, Milestone.READY_FOR_PICKUP)
T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
EVENT = {
    "event_id": "e1",
    "order_id": ORDER,
    "waybill": "SF1402837465",
    "status": "READY_FOR_PICKUP",
    "occurred_at": "2026-11-22T14:00:00+08:00",
    "bike_model": "Tarmac SL8",
    "recipient": {"name": "陳大文", "phone": "9123 4567", "email": "tai.man@example.com", "locale": "zh-HK"},
    "pickup": {
        "place": "Specialized 旺角門市",
        "address": "九龍旺角花園街 123 號地下",
        "window_start": "2026-11-24T14:00:00+08:00",
        "window_end": "2026-11-24T18:00:00+08:00",
        "documents": ["HKID"],
    },
}
SECRETS = ("陳大文", "9123 4567", "91234567", "tai.man", "/s/", "/u/")


def desk_and_row(
    channel: str | None, *, locale: str = "zh-HK", sealed: bool = True
) -> tuple[SupportDesk, SupportRow]:
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    key_id, blob = keyring.encrypt(json.dumps(EVENT).encode(), NID.bytes)
    renderer = Renderer(
        REPO / "templates",
        brand="Specialized",
        contact_phone="+852 3001 2345",
        contact_email="hk@example.com",
    )
    none: Any = None
    desk = SupportDesk(none, none, none, keyring, renderer)
    row = SupportRow(
        NID, ORDER, "SF1402837465", "ready_for_pickup", State.SENT, channel, "twilio", None, T0, T0, None,
        key_id if sealed else None, blob if sealed else None, None, None, created_at=T0, locale=locale,
    )  # fmt: skip
    return desk, row


@pytest.mark.parametrize(("channel", "locale"), [("sms", "zh-HK"), ("sms", "en"), ("email", "zh-HK")])
def test_the_text_is_rendered_again_with_the_name_masked_and_no_contact_or_link(
    channel: str, locale: str
) -> None:
    desk, row = desk_and_row(channel, locale=locale)
    text = desk.customer_text(row)
    assert text is not None
    assert ORDER in text
    assert "旺角" in text
    assert not any(s in text for s in SECRETS), text
    if locale == "zh-HK":
        assert "陳***您好" in text


def test_nothing_is_shown_when_nothing_was_sent_or_the_event_is_erased() -> None:
    desk, row = desk_and_row(None)
    assert desk.customer_text(row) is None
    desk, row = desk_and_row("sms", sealed=False)
    assert desk.customer_text(row) is None
    desk, row = desk_and_row("sms")
    assert desk.customer_text(replace(row, key_id="k2")) is None  # a key no longer held


def test_the_timeline_carries_the_text_and_labels_beside_the_codes() -> None:
    desk, row = desk_and_row("sms")
    text = desk.customer_text(row)
    (entry,) = timeline([replace(row, reason="twilio_30003")], {}, {NID: text or ""})
    assert (entry["state"], entry["reason"], entry["text"]) == ("sent", "twilio_30003", text)
    assert entry["label"] == {
        "milestone": {"zh": "可以取車", "en": "Ready to collect"},
        "state": {"zh": "已發送，等待送達報告", "en": "Sent, waiting for the delivery report"},
        "reason": {"zh": "Twilio 代碼 30003", "en": "Twilio code 30003"},
        "provider": "Twilio",
    }
    assert entry["steps"] == [
        {"time": "2026-11-22 14:00", "at": T0.isoformat(), "what": {"zh": "決定發送通知", "en": "Decided to notify"}, "details": [], "upcoming": False}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "masked"), [("陳大文", "陳***"), (" Chan Tai Man ", "C***"), ("", ""), ("   ", "")]
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_an_unknown_notification_id_has_no_text() -> None:
    assert timeline([desk_and_row("sms")[1]], {}, {uuid.uuid4(): "x"})[0]["text"] is None
