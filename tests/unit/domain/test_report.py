"""The rules every webhook parser shares: codes, references, JSON bodies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.domain.errors import MalformedReport
from service.domain.report import (
    OTHER_CODE,
    consent_word,
    entry_object,
    entry_text,
    json_document,
    report_code,
    report_reference,
)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, None),
        ("", None),
        ("30003", "30003"),
        (30003, "30003"),
        ("EC_X.1-a", "EC_X.1-a"),
        ("a b", OTHER_CODE),
        ("é", OTHER_CODE),
        ("x" * 65, OTHER_CODE),
    ],
)
def test_a_code_is_a_short_word_or_other(value: object, code: str | None) -> None:
    assert report_code(value) == code


@pytest.mark.parametrize("value", [True, False, 1.5, [1], {"a": 1}])
def test_a_code_of_another_type_is_malformed(value: object) -> None:
    with pytest.raises(MalformedReport):
        report_code(value)


def test_the_first_reference_given_counts() -> None:
    assert report_reference(None, "", "a", "b") == "a"
    assert report_reference() == ""
    with pytest.raises(MalformedReport):
        report_reference(None, 5, "a")


@pytest.mark.parametrize("raw", [b"\xff", b"{", b"[" * 100_000, b"", "é".encode("latin-1")])
def test_an_unreadable_document_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedReport):
        json_document(raw)


@pytest.mark.parametrize(
    ("parse", "message"),
    [
        (lambda: json_document(b"{"), "unreadable JSON"),
        (lambda: report_code(1.5), "a code is not a string"),
        (lambda: report_reference(5), "a reference is not a short string"),
        (lambda: report_reference("r" * 201), "a reference is not a short string"),
        (lambda: entry_object({"status": "x"}, "status"), "status is not an object"),
        (lambda: entry_text({"Body": 1}, "Body"), "Body is not a string"),
    ],
)
def test_the_malformed_message_names_the_field(parse: Callable[[], object], message: str) -> None:
    with pytest.raises(MalformedReport) as info:
        parse()
    assert str(info.value) == message


def test_an_absent_entry_is_empty() -> None:
    assert entry_text({}, "Body") == ""
    assert entry_object({}, "status") == {}
    assert entry_object({"status": None}, "status") == {}
    assert entry_object({"status": {"a": 1}}, "status") == {"a": 1}


@pytest.mark.parametrize(
    ("body", "opted_out"),
    [
        ("STOP", True),
        (" stop. ", True),
        ("Stop!", True),
        ("退訂。", True),
        ("取消！", True),
        ("start", False),
        ("訂閱", False),
        ("STOPX", None),  # only punctuation is trimmed
        ("XSTOP", None),
        ("STOP IT", None),
        ("", None),
    ],
)
def test_a_consent_word(body: str, opted_out: bool | None) -> None:
    assert consent_word(body) is opted_out
