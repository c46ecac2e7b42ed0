"""Twilio's status callbacks and inbound replies, parsed: every status, every consent word, hostile forms."""

from __future__ import annotations

import pytest

from service.domain.errors import MalformedReport
from service.domain.report import ConsentReply, DeliveryReport
from service.send.providers.twilio import TwilioClient
from service.send.providers.twilio_reports import parse_inbound_message, parse_status_callback

REF = "0b4f.1.tag"
QUERY = {"ref": REF}

# Every MessageStatus Twilio documents for an outbound message; only three are final.
STATUSES = [
    ("accepted", None),
    ("scheduled", None),
    ("queued", None),
    ("sending", None),
    ("sent", None),
    ("delivery_unknown", None),
    ("read", None),
    ("canceled", None),
    ("partially_delivered", None),
    ("delivered", True),
    ("undelivered", False),
    ("failed", False),
    ("", None),
    ("DELIVERED", None),  # Twilio's words are lower case: another word is not final
]


@pytest.mark.parametrize(("status", "delivered"), STATUSES)
def test_each_status_is_a_final_report_or_nothing(status: str, delivered: bool | None) -> None:
    report = parse_status_callback({"MessageStatus": status, "MessageSid": "SM1"}, QUERY)
    if delivered is None:
        assert report is None
    else:
        assert report == DeliveryReport("twilio", REF, delivered=delivered)


@pytest.mark.parametrize(
    ("error_code", "code"),
    [
        ("30003", "30003"),
        ("", None),
        ("9" * 64, "9" * 64),
        ("9" * 65, "other"),  # longer than a code: never copied into a receipt
        ("+85291234567", "other"),
        ("to +852 9123 4567", "other"),
    ],
)
def test_the_error_code_is_a_short_word_or_other(error_code: str, code: str | None) -> None:
    report = parse_status_callback({"MessageStatus": "undelivered", "ErrorCode": error_code}, QUERY)
    assert report == DeliveryReport("twilio", REF, delivered=False, code=code)


def test_a_missing_status_is_no_report_and_a_missing_reference_names_no_attempt() -> None:
    assert parse_status_callback({}, QUERY) is None
    assert parse_status_callback({"MessageStatus": "delivered"}, {}) == DeliveryReport(
        "twilio", "", delivered=True
    )


def test_the_reference_is_read_from_the_parameter_the_client_puts_on_its_callback_url() -> None:
    client = TwilioClient(
        None,  # type: ignore[arg-type]  # no request is made
        base_url="https://api.twilio.com",
        account_sid="AC1",
        auth_token="t",
        sender="+15005550006",
        status_callback="https://notifier.example.com/callbacks/twilio/status?x=1",
    )
    url = client.status_callback_url(REF)
    assert url is not None
    query = dict(pair.split("=") for pair in url.split("?")[1].split("&"))
    report = parse_status_callback({"MessageStatus": "delivered"}, query)
    assert report is not None
    assert report.reference == REF


@pytest.mark.parametrize(
    "form",
    [
        {"MessageStatus": 5},
        {"MessageStatus": ["delivered"]},
        {"MessageStatus": "undelivered", "ErrorCode": ["30003"]},
        {"MessageStatus": "undelivered", "ErrorCode": True},
        {"MessageStatus": "undelivered", "ErrorCode": {"a": 1}},
    ],
)
def test_a_field_of_the_wrong_type_is_malformed(form: dict[str, object]) -> None:
    with pytest.raises(MalformedReport):
        parse_status_callback(form, QUERY)


OPT_OUT = [
    "STOP",
    "stop",
    " Stop. ",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "退訂",
    "取消",
    "停止",
    "停止。",
    "stop!",
]
OPT_IN = ["START", "start", "UNSTOP", "訂閱", "訂閱！"]
NEITHER = ["", "hello", "STOP IT", "please stop", "STOPP", "開始"]


@pytest.mark.parametrize(
    ("body", "opted_out"),
    [*((b, True) for b in OPT_OUT), *((b, False) for b in OPT_IN), *((b, None) for b in NEITHER)],
)
def test_each_consent_word_of_a_reply(body: str, opted_out: bool | None) -> None:
    reply = parse_inbound_message({"Body": body, "From": "+85291234567"})
    if opted_out is None:
        assert reply is None
    else:
        assert reply == ConsentReply("+85291234567", opted_out, "sms_reply:twilio")


@pytest.mark.parametrize(
    ("sender", "phone"),
    [
        ("+85291234567", "+85291234567"),
        ("+447911123456", "+447911123456"),  # a foreign mobile may opt out too
        ("+85221234567", None),  # a landline sends no SMS
        ("", None),
        ("abc", None),
    ],
)
def test_a_reply_is_only_from_a_mobile(sender: str, phone: str | None) -> None:
    reply = parse_inbound_message({"Body": "STOP", "From": sender})
    assert (reply.phone_e164 if reply else None) == phone


def test_a_consent_reply_never_shows_the_phone_in_its_repr() -> None:
    reply = parse_inbound_message({"Body": "STOP", "From": "+85291234567"})
    assert "91234567" not in repr(reply)


@pytest.mark.parametrize(
    "form", [{"Body": 1, "From": "+85291234567"}, {"Body": "STOP", "From": ["+85291234567"]}]
)
def test_an_inbound_field_of_the_wrong_type_is_malformed(form: dict[str, object]) -> None:
    with pytest.raises(MalformedReport):
        parse_inbound_message(form)
