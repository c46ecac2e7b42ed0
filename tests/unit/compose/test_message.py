"""Composing one notification: the number to text (or why not), the locale, the SMS and the email."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.compose.message import Composer
from service.compose.render import Renderer
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import Recipient, ShipmentUpdate
from service.metrics import Metrics
from tests.builders import EMAIL

REPO = Path(__file__).resolve().parents[3]
MS = Milestone.ARRIVED_HK_WAREHOUSE
LATER = datetime(2030, 6, 1, tzinfo=UTC)


def renderer() -> Renderer:
    return Renderer(
        REPO / "templates",
        brand="Specialized",
        contact_phone="+852 3001 2345",
        contact_email="hk@example.com",
        links=LinkSigner(b"k" * 32, "https://n.example"),
        clock=lambda: datetime(2026, 11, 20, tzinfo=UTC),
    )


@pytest.fixture
def composer() -> Composer:
    return Composer(renderer(), Metrics())


def shipment(
    *, phone: str | None = "9123 4567", email: str | None = EMAIL, locale: str = "en"
) -> ShipmentUpdate:
    return ShipmentUpdate(
        event_id="A-e1",
        order_id="A",
        waybill="WB",
        tms_status="ARRIVED_HK_WAREHOUSE",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        bike_model="Tarmac",
        recipient=Recipient(name="Chan", phone=phone, email=email, locale=locale),
    )


def test_a_mobile_gets_the_sms_in_the_customers_locale_and_the_email_too(composer: Composer) -> None:
    msg = composer.compose(MS, shipment(), email_only=False, at=None)
    assert (msg.locale, msg.e164, msg.phone_note, msg.email_only, msg.failed) == (
        "en",
        "+85291234567",
        None,
        False,
        None,
    )
    assert msg.sms is not None
    assert (msg.sms.encoding, msg.sms.segments) == ("GSM-7", 2)
    assert msg.email is not None
    assert "Specialized" in msg.email().subject
    assert composer.locale("en") == "en"


def test_email_only_looks_at_no_phone(composer: Composer) -> None:
    msg = composer.compose(MS, shipment(), email_only=True, at=None)
    assert (msg.e164, msg.phone_note, msg.sms, msg.email_only) == (None, None, None, True)
    assert msg.email is not None


def test_no_phone_and_no_email_leaves_nothing_to_send_with(composer: Composer) -> None:
    msg = composer.compose(MS, shipment(phone=None, email=None), email_only=False, at=None)
    assert (msg.locale, msg.e164, msg.phone_note, msg.sms, msg.email, msg.email_only) == (
        "en",
        None,
        None,
        None,
        None,
        False,
    )


def test_a_foreign_mobile_is_refused_unless_allowed() -> None:
    foreign = shipment(phone="+86 138 0013 8000")
    assert Composer(renderer(), Metrics()).compose(MS, foreign, email_only=False, at=None).e164 is None
    allowed = Composer(renderer(), Metrics(), allow_foreign_mobiles=True)
    assert allowed.compose(MS, foreign, email_only=False, at=None).e164 == "+8613800138000"


def test_the_links_are_dated_by_the_time_given(composer: Composer) -> None:
    now = composer.compose(MS, shipment(), email_only=False, at=None)
    later = composer.compose(MS, shipment(), email_only=False, at=LATER)
    assert now.sms is not None
    assert later.sms is not None
    assert now.sms.body != later.sms.body
    assert now.email is not None
    assert later.email is not None
    assert now.email().text != later.email().text


def test_an_sms_over_the_cap_goes_by_email_or_fails_without_one() -> None:
    r = renderer()
    r.max_sms_segments = 1
    composer = Composer(r, Metrics())
    long = ShipmentUpdate(
        event_id="A-e1",
        order_id="A" * 60,
        waybill="WB" * 40,
        tms_status="ARRIVED_HK_WAREHOUSE",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        bike_model="Tarmac " * 20,
        recipient=Recipient(name="陳大文", phone="9123 4567", email=EMAIL, locale="zh-HK"),
    )
    msg = composer.compose(MS, long, email_only=False, at=None)
    assert (msg.e164, msg.phone_note, msg.sms, msg.email_only) == ("+85291234567", "sms_too_long", None, True)
    assert msg.email is not None
    no_email = dataclasses.replace(long, recipient=dataclasses.replace(long.recipient, email=None))
    failed = composer.compose(MS, no_email, email_only=False, at=None)
    assert (failed.locale, failed.failed, failed.email) == ("zh-HK", "sms_too_long", None)
