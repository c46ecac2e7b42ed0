"""Infobip's delivery reports, parsed, and the webhook's credentials: every status group, hostile bodies."""

from __future__ import annotations

import base64
import json

import pytest

from service.domain.errors import MalformedReport
from service.domain.report import DeliveryReport
from service.send.providers.infobip import verify_webhook_credentials
from service.send.providers.infobip_reports import parse_reports

REF = "0b4f.2.tag"


def body(*results: object) -> bytes:
    return json.dumps({"results": list(results)}).encode()


def report(group: str, **more: object) -> dict[str, object]:
    return {"callbackData": REF, "messageId": "other-id", "status": {"groupName": group}, **more}


# Every status group Infobip has (groupId 0 to 5); only four are final.
GROUPS = [
    ("ACCEPTED", None),
    ("PENDING", None),
    ("UNDELIVERABLE", False),
    ("DELIVERED", True),
    ("EXPIRED", False),
    ("REJECTED", False),
    ("", None),
    ("delivered", None),  # Infobip's group names are upper case
]


@pytest.mark.parametrize(("group", "delivered"), GROUPS)
def test_each_status_group_is_a_final_report_or_nothing(group: str, delivered: bool | None) -> None:
    parsed = parse_reports(body(report(group)))
    assert parsed == ([] if delivered is None else [DeliveryReport("infobip", REF, delivered=delivered)])


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        (report("UNDELIVERABLE", error={"name": "EC_UNKNOWN_SUBSCRIBER"}), "EC_UNKNOWN_SUBSCRIBER"),
        (
            report(
                "UNDELIVERABLE", status={"groupName": "UNDELIVERABLE", "name": "UNDELIVERABLE_NOT_DELIVERED"}
            ),
            "UNDELIVERABLE_NOT_DELIVERED",
        ),
        (
            report(
                "REJECTED", status={"groupName": "REJECTED", "name": "REJECTED_DND"}, error={"name": "EC_X"}
            ),
            "EC_X",
        ),  # the error's name before the status's
        (report("DELIVERED", error={"name": "NO_ERROR"}), "NO_ERROR"),
        (report("EXPIRED", error={"name": 5}), "5"),
        (report("EXPIRED", error={"name": "a name with spaces"}), "other"),
        (report("EXPIRED", error={"name": "X" * 65}), "other"),
        (report("EXPIRED", error={"name": ""}), None),
    ],
)
def test_the_code_is_the_error_name_else_the_status_name(entry: dict[str, object], code: str | None) -> None:
    [parsed] = parse_reports(body(entry))
    assert parsed.code == code


@pytest.mark.parametrize(
    ("entry", "reference"),
    [
        ({"callbackData": REF, "messageId": "m"}, REF),
        ({"callbackData": "", "messageId": REF}, REF),  # callbackData first, else our messageId
        ({"messageId": REF}, REF),
        ({}, ""),
        ({"callbackData": "r" * 200}, "r" * 200),
    ],
)
def test_the_reference_is_callback_data_else_the_message_id(entry: dict[str, object], reference: str) -> None:
    [parsed] = parse_reports(body({**entry, "status": {"groupName": "DELIVERED"}}))
    assert parsed.reference == reference


def test_reports_keep_their_order_and_an_empty_or_absent_list_is_no_report() -> None:
    other = {"callbackData": "x", "status": {"groupName": "EXPIRED"}}
    assert [r.reference for r in parse_reports(body(report("DELIVERED"), report("PENDING"), other))] == [
        REF,
        "x",
    ]
    assert parse_reports(b'{"results": []}') == []
    assert parse_reports(b"{}") == []


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",
        b'{"results": [1]}',
        b'{"results": ["DELIVERED"]}',
        b'{"results": "DELIVERED"}',
        b'{"results": null}',
        b'{"results": [{"status": "DELIVERED"}]}',
        b'{"results": [{"status": {"groupName": ["DELIVERED"]}}]}',
        b'{"results": [{"status": {"groupName": null}}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "error": "x"}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "callbackData": {"a": 1}}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "messageId": 7}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "error": {"name": true}}]}',
        b'{"results": [{"status": {"groupName": "UNDELIVERABLE"}, "error": {"name": [1]}}]}',
        b'{"results": [{"status": {"groupName": "DELIVERED"}, "callbackData": "' + b"r" * 201 + b'"}]}',
        b'{"results": [\xff]}',
        b'{"results": [{"callbackData": "\xff\xfe"}]}',  # raw bytes that are not UTF-8
        b"[" * 20_000 + b"]" * 20_000,  # deeper than the JSON parser goes
        b"not json",
        b"",
    ],
)
def test_a_body_that_is_not_infobip_reports_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedReport):
        parse_reports(raw)


def test_one_bad_entry_among_good_ones_rejects_the_whole_body() -> None:
    with pytest.raises(MalformedReport):
        parse_reports(body(report("DELIVERED"), 7))
    with pytest.raises(MalformedReport):  # also a bad entry whose status is not final
        parse_reports(body(report("DELIVERED"), {"status": {"groupName": "PENDING"}, "messageId": 1}))


def test_the_malformed_error_never_carries_what_the_body_said() -> None:
    with pytest.raises(MalformedReport) as info:
        parse_reports(body({"status": {"groupName": "DELIVERED"}, "callbackData": "+85291234567" * 20}))
    assert "85291234567" not in str(info.value)


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (basic(b"infobip:hook-secret"), True),
        (basic(b"infobip:hook-secreT"), False),
        (basic(b"infobip:hook-secret:"), False),
        (basic(b"other:hook-secret"), False),
        ("Bearer " + base64.b64encode(b"infobip:hook-secret").decode(), False),
        ("basic " + base64.b64encode(b"infobip:hook-secret").decode(), False),
        ("Basic not*base64", False),
        ("Basic ", False),
        ("", False),
        (None, False),
    ],
)
def test_the_webhook_credentials(header: str | None, ok: bool) -> None:
    assert verify_webhook_credentials(header, "infobip", "hook-secret") is ok


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "unreadable JSON"),
        (b"[1, 2]", "results is not a list"),
        (b'{"results": {"a": 1}}', "results is not a list"),
        (b'{"results": [1]}', "a report is not an object"),
        (b'{"results": [{"status": "DELIVERED"}]}', "status is not an object"),
        (b'{"results": [{"status": {"groupName": "DELIVERED"}, "error": 5}]}', "error is not an object"),
        (b'{"results": [{"status": {"groupName": 3}}]}', "groupName is not a string"),
        (
            b'{"results": [{"status": {"groupName": "DELIVERED"}, "messageId": 7}]}',
            "a reference is not a short string",
        ),
        (b'{"results": [{"status": {"groupName": "DELIVERED", "name": [1]}}]}', "a code is not a string"),
    ],
)
def test_the_400_names_what_is_wrong_with_the_body(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedReport) as info:
        parse_reports(raw)
    assert str(info.value) == message
