"""SendGrid's Event Webhook events, parsed: every event type, the age window, hostile bodies."""

from __future__ import annotations

import json

import pytest

from service.domain.errors import MalformedReport
from service.domain.report import DeliveryReport
from service.send.providers.sendgrid_reports import fresh, parse_events

NOW = 1_800_000_000.0
AGE = 3 * 86_400.0
SKEW = 300.0
REF = "0b4f.3.tag"


def parse(*events: object, now: float = NOW) -> list[DeliveryReport]:
    return parse_events(json.dumps(list(events)).encode(), now, max_age_s=AGE, max_skew_s=SKEW)


def event(kind: str, at: float = NOW, **more: object) -> dict[str, object]:
    return {"event": kind, "timestamp": at, "ref": REF, "email": "someone@example.com", **more}


# Every event type SendGrid posts; only three are a final status of the email.
EVENTS = [
    ("processed", None),
    ("deferred", None),
    ("delivered", True),
    ("bounce", False),
    ("dropped", False),
    ("open", None),
    ("click", None),
    ("spamreport", None),
    ("unsubscribe", None),
    ("group_unsubscribe", None),
    ("group_resubscribe", None),
    ("", None),
    ("Delivered", None),
]


@pytest.mark.parametrize(("kind", "delivered"), EVENTS)
def test_each_event_type_is_a_final_report_or_nothing(kind: str, delivered: bool | None) -> None:
    expected = [] if delivered is None else [DeliveryReport("sendgrid", REF, delivered=delivered, code=kind)]
    assert parse(event(kind)) == expected


@pytest.mark.parametrize(
    ("more", "code"),
    [
        ({"type": "blocked"}, "blocked"),  # a bounce's type before the event's name
        ({"type": "bounce"}, "bounce"),
        ({"type": ""}, "bounce"),
        ({"type": None}, "bounce"),
        ({"type": 550}, "550"),
        ({"type": "550 5.1.1 <someone@example.com>: user unknown"}, "other"),
    ],
)
def test_the_code_is_the_type_else_the_event(more: dict[str, object], code: str) -> None:
    [parsed] = parse(event("bounce", **more))
    assert parsed.code == code


@pytest.mark.parametrize(
    ("at", "expired"),
    [
        (NOW, False),
        (NOW - AGE, False),  # the window's ends are in it
        (NOW + SKEW, False),
        (NOW - AGE - 1, True),
        (NOW + SKEW + 1, True),
        (0, True),
        (int(NOW), False),
    ],
)
def test_an_event_dated_outside_the_window_is_expired(at: float, expired: bool) -> None:
    [parsed] = parse(event("delivered", at))
    assert parsed.expired is expired


def test_events_keep_their_order_and_a_missing_reference_names_no_attempt() -> None:
    parsed = parse(event("delivered"), event("open"), {"event": "dropped", "timestamp": NOW})
    assert [(r.reference, r.delivered) for r in parsed] == [(REF, True), ("", False)]
    assert parse() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"[1]",
        b'{"event": "bounce"}',
        b'["bounce"]',
        b"[null]",
        b'[{"event": "bounce", "ref": "x"}]',  # no timestamp
        b'[{"event": "bounce", "timestamp": "soon"}]',
        b'[{"event": "bounce", "timestamp": "1800000000"}]',
        b'[{"event": "bounce", "timestamp": true}]',
        b'[{"event": "bounce", "timestamp": null}]',
        b'[{"event": ["bounce"], "timestamp": 1800000000}]',
        b'[{"event": null, "timestamp": 1800000000}]',
        b'[{"event": "bounce", "timestamp": 1800000000, "ref": 5}]',
        b'[{"event": "bounce", "timestamp": 1800000000, "ref": "' + b"r" * 201 + b'"}]',
        b'[{"event": "bounce", "timestamp": 1800000000, "type": {"a": 1}}]',
        b'[{"event": "bounce", "timestamp": 1' + b"0" * 400 + b"}]",  # beyond any float
        b'[{"event": "open", "timestamp": "later"}]',  # not final, still checked
        b"[\xff]",
        b'[{"event": "bounce", "timestamp": 1800000000, "ref": "\xc3\x28"}]',  # invalid UTF-8
        b"[" * 20_000 + b"]" * 20_000,
        b"",
        b"not json",
    ],
)
def test_a_body_that_is_not_sendgrid_events_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedReport):
        parse_events(raw, NOW, max_age_s=AGE, max_skew_s=SKEW)


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [
        (str(int(NOW)), True),
        (NOW - 10, True),
        ("1800000000.5", True),
        ("soon", False),
        ("", False),
        (NOW + 11, False),
    ],
)
def test_fresh_reads_a_number_or_its_text(stamp: str | float, ok: bool) -> None:
    assert fresh(stamp, NOW, past_s=10, future_s=10) is ok


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "unreadable JSON"),
        (b'{"event": "bounce"}', "not a list of events"),
        (b"[1]", "an event is not an object"),
        (b'[{"event": "bounce"}]', "timestamp is not a number"),
        (b'[{"event": "bounce", "timestamp": "1800000000"}]', "timestamp is not a number"),
        (b'[{"event": "bounce", "timestamp": 1' + b"0" * 400 + b"}]", "timestamp is not a number"),
        (b'[{"event": 1, "timestamp": 1800000000}]', "event is not a string"),
        (b'[{"event": "bounce", "timestamp": 1800000000, "ref": 5}]', "a reference is not a short string"),
        (b'[{"event": "bounce", "timestamp": 1800000000, "type": [1]}]', "a code is not a string"),
    ],
)
def test_the_400_names_what_is_wrong_with_the_body(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedReport) as info:
        parse_events(raw, NOW, max_age_s=AGE, max_skew_s=SKEW)
    assert str(info.value) == message
