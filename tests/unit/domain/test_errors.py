"""The provider errors' table at the top of ``service.domain.errors`` is what the classes say."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.domain import errors
from service.domain.errors import (
    DEFAULT_PAUSE_S,
    ContentRejected,
    EventRejected,
    InvalidRecipient,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
)

COLUMNS = (
    "retriable",
    "ambiguous",
    "pause_s",
    "breaker_failure",
    "provider_side",
    "next_provider",
    "opted_out",
)
CLASSES = (
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    InvalidRecipient,
    RecipientOptedOut,
    ContentRejected,
    ProviderRejected,
)


def drawn_table() -> dict[str, dict[str, str]]:
    """The rows of the table in the module's docstring, by class name."""
    doc = errors.__doc__ or ""
    lines = doc.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["error", "retriable"])
    assert tuple(lines[header].split()[1:]) == COLUMNS
    rows: dict[str, dict[str, str]] = {}
    for line in lines[header + 2 :]:
        if line.startswith("="):
            break
        name, *values = line.split()
        rows[name] = dict(zip(COLUMNS, values, strict=True))
    return rows


def test_the_table_draws_every_provider_error_class() -> None:
    assert set(drawn_table()) == {cls.__name__ for cls in CLASSES}
    assert {
        cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, ProviderError)
    } == set(CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_sets_its_row_of_the_table(cls: type[ProviderError]) -> None:
    row = drawn_table()[cls.__name__]
    err = cls("p", "1")
    for column in COLUMNS:
        if column == "pause_s":
            continue
        assert getattr(err, column) is (row[column] == "yes"), column
    assert (err.pause_s is not None) is (row["pause_s"] == "Retry-After")


@pytest.mark.parametrize(
    ("retry_after", "pause_s"), [(7.0, 7.0), (0.5, 0.5), (None, DEFAULT_PAUSE_S), (0.0, DEFAULT_PAUSE_S)]
)
def test_a_rate_limit_pauses_for_retry_after_or_one_second(retry_after: float | None, pause_s: float) -> None:
    assert RateLimited("p", "429", retry_after).pause_s == pause_s


@pytest.mark.parametrize("cls", [c for c in CLASSES if c is not ProviderError], ids=lambda c: c.__name__)
def test_permanent_is_the_opposite_of_retriable_for_what_clients_raise(cls: type[ProviderError]) -> None:
    assert cls("p", "1").permanent is not cls.retriable


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: ProviderError("twilio", "21211"), "twilio error 21211"),
        (
            lambda: ProviderUnavailable("twilio", "201", "unreadable success response"),
            "twilio error 201: unreadable success response",
        ),
        (lambda: RateLimited("infobip", "429", 7.0), "infobip error 429: retry after 7.0s"),
        (lambda: RateLimited("infobip", "429"), "infobip error 429"),
        (lambda: RateLimited("infobip", "429", 0.0), "infobip error 429"),
        (lambda: EventRejected("bad_phone"), "bad_phone"),
        (lambda: EventRejected("bad_phone", "not a mobile"), "bad_phone: not a mobile"),
    ],
)
def test_what_an_error_says_when_logged(make: Callable[[], Exception], text: str) -> None:
    assert str(make()) == text  # made in the test, not at collection, so mutation testing sees it


def test_an_error_keeps_its_parts() -> None:
    rejected = EventRejected("bad_phone")
    assert (rejected.reason, rejected.detail) == ("bad_phone", "")
    limited = RateLimited("infobip", "429", 7.0)
    assert (limited.provider, limited.code, limited.retry_after) == ("infobip", "429", 7.0)
