"""The reasons' vocabulary: fixed codes, and a provider's word as ``<provider>_<what>``."""

from __future__ import annotations

import pytest

from service.domain import reasons


@pytest.mark.parametrize(
    ("reason", "split"),
    [
        ("twilio_30003", ("twilio", "30003")),
        ("infobip_EC_ABSENT_SUBSCRIBER", ("infobip", "EC_ABSENT_SUBSCRIBER")),
        ("sendgrid_circuit_open", ("sendgrid", reasons.CIRCUIT_OPEN)),
        ("twilio_", None),
        ("phone_invalid", None),
        (reasons.STALE, None),
        ("unknown_30003", None),
    ],
)
def test_split_provider_reason(reason: str, split: tuple[str, str] | None) -> None:
    assert reasons.split_provider_reason(reason) == split


def test_a_provider_reason_splits_back_into_its_parts() -> None:
    for provider in reasons.PROVIDERS:
        for what in (*reasons.PROVIDER_CONDITIONS, "21610"):
            assert reasons.split_provider_reason(reasons.provider_reason(provider, what)) == (provider, what)


def test_no_fixed_code_reads_as_a_provider_reason() -> None:
    assert all(reasons.split_provider_reason(r) is None for r in reasons.FIXED)
