"""Test data builders shared by every test layer: TMS events (as the wire carries them) and
parsed shipment updates (as the domain sees them), with the defaults the suites agree on."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from service.domain.milestones import Milestone
from service.domain.model import Recipient, ShipmentUpdate, notification_id
from service.domain.outcome import ClaimRequest

PHONE = "9123 4567"
NAME = "陳大文"
EMAIL = "tai.man@example.com"

#: Where a READY_FOR_PICKUP event says to collect the bike, in the customer's language.
PICKUP: dict[str, dict[str, object]] = {
    "zh-HK": {
        "place": "Specialized 旺角門市",
        "address": "九龍旺角花園街 123 號地下",
        "window_start": "2026-11-24T14:00:00+08:00",
        "window_end": "2026-11-24T18:00:00+08:00",
        "documents": ["HKID"],
    },
    "en": {
        "place": "Specialized Kwun Tong Service Centre",
        "address": "G/F, 88 Hoi Yuen Road, Kwun Tong",
        "window_start": "2026-11-25T10:00:00+08:00",
        "window_end": "2026-11-25T19:00:00+08:00",
        "documents": ["HKID"],
    },
}


def event_doc(
    order: str,
    status: str,
    n: int = 1,
    *,
    waybill: str = "SF1",
    name: str = NAME,
    phone: str = PHONE,
    email: str = EMAIL,
    locale: str = "zh-HK",
    pickup: dict[str, object] | None = None,
    **extra: object,
) -> dict[str, object]:
    """A valid ``ShipmentEventV1`` document; its event id is ``<order>-<status>-<n>``. ``extra``
    fields replace the document's (a whole ``recipient``, a bad ``occurred_at``, ...). A
    READY_FOR_PICKUP event carries ``pickup`` (default: the place in the customer's language)."""
    doc: dict[str, object] = {
        "event_id": f"{order}-{status}-{n}",
        "order_id": order,
        "waybill": waybill,
        "status": status,
        "occurred_at": "2026-11-20T09:00:00+08:00",
        "bike_model": "Tarmac SL8",
        "recipient": {"name": name, "phone": phone, "email": email, "locale": locale},
    }
    if status == "READY_FOR_PICKUP":
        doc["pickup"] = dict(pickup or PICKUP[locale if locale in PICKUP else "en"])
    doc.update(extra)
    return doc


def event(order: str, status: str, n: int = 1, **extra: object) -> bytes:
    """An event's JSON as the input topic carries it (a Hong Kong customer reading Chinese)."""
    return json.dumps(event_doc(order, status, n, **extra), ensure_ascii=False).encode()


def keyed_event(
    order: str,
    status: str,
    *,
    n: int = 1,
    phone: str = "9123 4567",
    locale: str = "en",
    pickup: dict[str, object] | None = None,
    **extra: object,
) -> tuple[bytes, bytes]:
    """(key, value) for the real topic, keyed by order id, as the TMS publishes it (the end-to-end
    suites' customer: English, an address and a waybill that follows the order number)."""
    doc = event_doc(
        order,
        status,
        n,
        waybill=f"WB{order[-6:]}",
        name="Test Customer",
        phone=phone,
        email="customer@example.com",
        locale=locale,
        pickup=pickup or PICKUP["en"],
        **extra,
    )
    return order.encode(), json.dumps(doc, ensure_ascii=False).encode()


def update(
    order: str,
    status: str = "ARRIVED_HK_WAREHOUSE",
    *,
    event_id: str | None = None,
    locale: str | None = None,
) -> ShipmentUpdate:
    """A parsed update (an SMS-only recipient); its event id is ``<order>-e1`` unless given."""
    return ShipmentUpdate(
        event_id=event_id or f"{order}-e1",
        order_id=order,
        waybill="WB",
        tms_status=status,
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        bike_model="Tarmac",
        recipient=Recipient(name="n", phone="91234567", email=None, locale=locale),
    )


def claim(
    order: str, milestone: Milestone = Milestone.ARRIVED_HK_WAREHOUSE, state: str = "claimed"
) -> ClaimRequest:
    """A claim of (order, milestone) with its stable notification id."""
    return ClaimRequest(notification_id(order, milestone), update(order), milestone, state)
