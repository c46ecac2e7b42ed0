from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.contracts import dump_schema, json_schemas, parse_event
from service.domain.errors import EventRejected

REPO = Path(__file__).resolve().parents[2]

VALID = {
    "event_id": "e1",
    "order_id": "SO-1",
    "waybill": "SF1",
    "status": "READY_FOR_PICKUP",
    "occurred_at": "2026-11-20T09:00:00+08:00",
    "bike_model": "Tarmac",
    "recipient": {"name": "陳大文", "phone": "9123 4567", "locale": "zh-HK"},
    "pickup": {
        "place": "Store",
        "address": "1 Road",
        "window_start": "2026-11-24T14:00:00+08:00",
        "window_end": "2026-11-24T18:00:00+08:00",
        "documents": ["HKID"],
    },
}


def test_valid_event_becomes_a_domain_update() -> None:
    u = parse_event(json.dumps(VALID).encode())
    assert u.order_id == "SO-1"
    assert u.tms_status == "READY_FOR_PICKUP"
    assert u.pickup is not None
    assert u.pickup.documents == ("HKID",)
    assert u.recipient.phone == "9123 4567"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (None, "empty_value"),
        (json.dumps({**VALID, "pickup": None}).encode(), "invalid_event"),
        (json.dumps({**VALID, "occurred_at": "2026-11-20T09:00:00"}).encode(), "invalid_event"),
        (json.dumps({**VALID, "recipient": {"name": "x"}}).encode(), "invalid_event"),
        (json.dumps({k: v for k, v in VALID.items() if k != "waybill"}).encode(), "invalid_event"),
        # PostgreSQL refuses NUL: an id with one would fail forever downstream, so it is refused here
        (json.dumps({**VALID, "order_id": "SO-1\u0000"}).encode(), "invalid_event"),
        (json.dumps({**VALID, "event_id": "e\n1"}).encode(), "invalid_event"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(EventRejected) as info:
        parse_event(raw)
    assert info.value.reason == reason


def test_rejection_detail_never_echoes_personal_data() -> None:
    bad = {
        **VALID,
        "recipient": {"name": "陳大文", "phone": "9123 4567", "email": "not-an-email", "locale": "zh-HK"},
    }
    with pytest.raises(EventRejected) as info:
        parse_event(json.dumps(bad).encode())
    text = str(info.value)
    assert "recipient.email" in text
    assert "not-an-email" not in text
    assert "9123" not in text
    assert "陳大文" not in text


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_schema_files_match_the_models(name: str) -> None:
    on_disk = (REPO / "schemas" / name).read_text(encoding="utf-8")
    assert on_disk == dump_schema(json_schemas()[name]), "run `make schemas` and commit the result"
