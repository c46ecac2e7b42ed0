"""The recipient's blind indexes: a valid mobile's and the email's, never plaintext."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from service.domain.model import Recipient, ShipmentUpdate
from service.privacy.blind_index import BlindIndex
from service.privacy.subjects import RecipientSubjects
from tests.builders import EMAIL

BLIND = BlindIndex(os.urandom(32))


def shipment(phone: str | None, email: str | None) -> ShipmentUpdate:
    return ShipmentUpdate(
        event_id="A-e1",
        order_id="A",
        waybill="WB",
        tms_status="ARRIVED_HK_WAREHOUSE",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        bike_model="Tarmac",
        recipient=Recipient(name="n", phone=phone, email=email),
    )


def test_a_mobile_and_an_email_have_their_blind_indexes() -> None:
    subjects = RecipientSubjects(BLIND)
    assert subjects.of(shipment("9123 4567", EMAIL)) == (BLIND.phone("+85291234567"), BLIND.email(EMAIL))
    assert subjects.phone("+85291234567") == BLIND.phone("+85291234567")


def test_what_is_missing_or_not_a_mobile_has_none() -> None:
    subjects = RecipientSubjects(BLIND)
    assert subjects.of(shipment(None, None)) == (None, None)
    assert subjects.of(shipment("2123 4567", None)) == (None, None)  # a fixed line
    assert subjects.of(shipment(None, EMAIL)) == (None, BLIND.email(EMAIL))


def test_a_foreign_mobile_has_an_index_only_when_foreign_mobiles_are_allowed() -> None:
    foreign = shipment("+86 138 0013 8000", None)
    assert RecipientSubjects(BLIND).of(foreign) == (None, None)
    allowed = RecipientSubjects(BLIND, allow_foreign_mobiles=True)
    assert allowed.of(foreign) == (BLIND.phone("+8613800138000"), None)
