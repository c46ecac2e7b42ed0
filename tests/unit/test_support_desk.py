"""The support site's pure parts: what counts as an order query, masking, origins."""

from __future__ import annotations

import pytest

from service.http.staff_sessions import origin_of
from service.http.support_desk import QUERY_MAX, mask_email, valid_query


@pytest.mark.parametrize(
    ("raw", "query"),
    [
        ("  ORD-1  ", "ORD-1"),
        ("../ORD/1", "../ORD/1"),  # a path-like id names that order, nothing else
        ("x" * QUERY_MAX, "x" * QUERY_MAX),
        ("x" * (QUERY_MAX + 1), None),
        ("", None),
        ("   ", None),
        ("ORD\x001", None),
        ("ORD\x7f", None),
        ("ORD\ud800", None),  # a lone surrogate
        (42, None),
        (None, None),
    ],
)
def test_valid_query(raw: object, query: str | None) -> None:
    assert valid_query(raw) == query


@pytest.mark.parametrize(
    ("address", "masked"),
    [("tai.man@example.com", "t***@example.com"), ("broken", "***"), ("@example.com", "***@example.com")],
)
def test_mask_email(address: str, masked: str) -> None:
    assert mask_email(address) == masked


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Notify.Example.com/cs/orders?q=1", "https://notify.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("/cs", None),
        ("null", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin
