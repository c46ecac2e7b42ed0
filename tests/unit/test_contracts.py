from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from service.contracts import canonical_event, dump_schema, json_schemas, parse_event
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


# --- bounds, strict date-times, control characters: the schema and the parser agree -------------

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SCHEMA = json.loads((REPO / "schemas" / "shipment-status-event.v1.json").read_text(encoding="utf-8"))


def _with(path: str, value: object) -> dict[str, object]:
    """VALID with one field (``a.b`` for a nested one) replaced; ``...`` removes it."""
    event = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    target: dict[str, object] = event
    for p in parents:
        target = target[p]  # type: ignore[assignment]
    if value is ...:
        target.pop(leaf, None)
    else:
        target[leaf] = value
    return event


# (case, event, accepted). Each is run through the published JSON Schema and through the parser.
HOSTILE = [
    ("valid", VALID, True),
    ("occurred_at as a Unix number", _with("occurred_at", 1_763_600_400), False),
    ("occurred_at as a numeric string", _with("occurred_at", "1763600400"), False),
    ("occurred_at as a float", _with("occurred_at", 1_763_600_400.5), False),
    ("occurred_at without an offset", _with("occurred_at", "2026-11-20T09:00:00"), False),
    ("occurred_at a date only", _with("occurred_at", "2026-11-20"), False),
    ("occurred_at with a space", _with("occurred_at", "2026-11-20 09:00:00+08:00"), False),
    ("occurred_at lower-case z", _with("occurred_at", "2026-11-20T09:00:00z"), False),
    ("occurred_at in year 1", _with("occurred_at", "0001-01-01T00:00:00+00:00"), False),
    ("occurred_at in year 9999", _with("occurred_at", "9999-12-31T23:59:59-01:00"), False),
    ("occurred_at on 30 February", _with("occurred_at", "2026-02-30T09:00:00Z"), False),
    ("occurred_at a leap second", _with("occurred_at", "2026-12-31T23:59:60Z"), False),
    ("occurred_at offset +24:00", _with("occurred_at", "2026-11-20T09:00:00+24:00"), False),
    ("occurred_at in UTC with fractions", _with("occurred_at", "2026-11-20T01:00:00.123456789Z"), True),
    ("window_start as a number", _with("pickup.window_start", 1_763_971_200), False),
    ("window_end as a numeric string", _with("pickup.window_end", "1763985600"), False),
    ("documents: thousands of codes", _with("pickup.documents", ["HKID"] * 5000), False),
    ("documents: the most allowed", _with("pickup.documents", ["HKID"] * 10), True),
    ("a document code too long", _with("pickup.documents", ["X" * 65]), False),
    ("name too long", _with("recipient.name", "A" * 101), False),
    ("name at its longest", _with("recipient.name", "A" * 100), True),
    ("address too long", _with("pickup.address", "1 Road " * 40), False),
    ("bike model too long", _with("bike_model", "Tarmac " * 20), False),
    ("NUL in the name", _with("recipient.name", "陳大文\u0000"), False),
    ("ESC in the place", _with("pickup.place", "Store\u001b[2J"), False),
    ("BEL in the bike model", _with("bike_model", "Tarmac\u0007"), False),
    ("DEL in the location", _with("location", "Kwai\u007fChung"), False),
    ("C1 control in the address", _with("pickup.address", "1 Road\u0090"), False),
    ("a name of spaces only", _with("recipient.name", "   "), False),
    ("a name of invisible characters only", _with("recipient.name", "\u200b\u202e"), False),
    ("bidi override inside a name (stripped)", _with("recipient.name", "Emily\u202eWong"), True),
    ("newline in an address (whitespace)", _with("pickup.address", "Unit 1\n1 Road"), True),
    ("newline in an order id", _with("order_id", "SO-1\nSO-2"), False),
    ("newline around an order id (trimmed)", _with("order_id", "\nSO-1\r\n"), True),
    ("NEL around an address (trimmed)", _with("pickup.address", "1 Road\u0085"), True),
    ("C1 control inside a name", _with("recipient.name", "Emily\u009bWong"), False),
    ("unit separator around an id", _with("waybill", "SF1\u001f"), False),
    ("unknown extra fields", {**VALID, "credit_card": "4111", "internal": {"x": 1}}, True),
]


@pytest.mark.parametrize(
    ("event", "accepted"), [(e, a) for _, e, a in HOSTILE], ids=[c for c, _, _ in HOSTILE]
)
def test_the_schema_and_the_parser_agree_on_hostile_events(event: dict[str, object], accepted: bool) -> None:
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    schema_ok = validator.is_valid(event)
    reason = None
    try:
        parse_event(json.dumps(event).encode(), now=NOW)
    except EventRejected as exc:
        reason = exc.reason
    assert (schema_ok, reason is None) == (accepted, accepted)
    assert reason in (None, "invalid_event")


@pytest.mark.parametrize("event", [e for _, e, _ in HOSTILE], ids=[c for c, _, _ in HOSTILE])
def test_draft_07_reads_the_schema_as_draft_2020_12_does(event: dict[str, object]) -> None:
    """The schema says 2020-12; AsyncAPI 3.0 (schemas/asyncapi.yaml) reads payloads as draft-07."""
    verdicts = [
        {
            (e.validator, tuple(e.absolute_path))
            for e in cls(SCHEMA, format_checker=cls.FORMAT_CHECKER).iter_errors(event)
        }
        for cls in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator)
    ]
    assert verdicts[0] == verdicts[1]


def test_a_rejected_date_time_names_the_field_and_the_rule() -> None:
    with pytest.raises(EventRejected) as info:
        parse_event(json.dumps(_with("occurred_at", 1_763_600_400)).encode(), now=NOW)
    assert info.value.detail == "occurred_at: datetime_not_rfc3339"


def test_occurred_at_more_than_a_day_ahead_of_the_clock_is_rejected() -> None:
    ahead = json.dumps(_with("occurred_at", "2026-12-02T11:00:00Z")).encode()
    with pytest.raises(EventRejected) as info:
        parse_event(ahead, now=NOW)
    assert info.value.detail == "occurred_at: occurred_in_future"
    # The same event is fine a few hours later: the clock is the caller's.
    assert parse_event(ahead, now=NOW + timedelta(hours=2)).occurred_at == datetime(
        2026, 12, 2, 11, tzinfo=UTC
    )


def test_invisible_formatting_is_stripped_from_free_text() -> None:
    u = parse_event(json.dumps(_with("recipient.name", "\u200bEmily\u202e Wong\ufeff")).encode(), now=NOW)
    assert u.recipient.name == "Emily Wong"


def test_the_canonical_event_keeps_only_known_fields_and_parses_back() -> None:
    raw = {**VALID, "credit_card": "4111 1111 1111 1111", "recipient": {**VALID["recipient"], "dob": "1990"}}  # type: ignore[dict-item]
    update = parse_event(json.dumps(raw).encode(), now=NOW)
    sealed = canonical_event(update)
    assert b"4111" not in sealed
    assert b"dob" not in sealed
    assert set(json.loads(sealed)) <= set(SCHEMA["properties"])
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(json.loads(sealed))
    assert parse_event(sealed) == update
