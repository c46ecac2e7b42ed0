"""Which undelivered codes say a number is bad for good: those the clients read as InvalidRecipient."""

from __future__ import annotations

import pytest

from service.send.providers.codes import permanent_code


@pytest.mark.parametrize(
    ("provider", "code", "permanent"),
    [
        ("twilio", "30005", True),  # unknown destination handset
        ("twilio", "30006", True),  # landline or unreachable carrier
        ("twilio", "21211", True),
        ("twilio", "30003", False),  # unreachable for now: Twilio says retry
        ("twilio", "30007", False),  # carrier filtering: the content, not the number
        ("twilio", "other", False),
        ("infobip", "EC_UNKNOWN_SUBSCRIBER", True),
        ("infobip", "EC_ABSENT_SUBSCRIBER", False),
        ("infobip", "REJECTED_DND", False),  # an opt-out, not a bad number
        ("sendgrid", "400", False),  # not an SMS provider
    ],
)
def test_permanent_codes(provider: str, code: str, permanent: bool) -> None:
    assert permanent_code(provider, code) is permanent
