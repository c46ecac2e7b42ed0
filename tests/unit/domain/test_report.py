"""The rules every webhook parser shares: codes, references, JSON bodies."""

from __future__ import annotations

import pytest

from service.domain.errors import MalformedReport
from service.domain.report import OTHER_CODE, json_document, report_code, report_reference


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
