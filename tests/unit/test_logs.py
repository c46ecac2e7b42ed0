from __future__ import annotations

import io
import sys

import pytest
import structlog

from service.logs import RedactPII, configure, get_logger, redact_text


@pytest.mark.parametrize(
    "text",
    [
        "+85291234567",
        "+852 9123 4567",
        "9123-4567",
        "(852) 9123 4567",
        "00852 9123 4567",
        "＋８５２ ９１２３ ４５６７",
        "chan.tai.man@example.com",
    ],
)
def test_phone_numbers_and_emails_are_masked(text: str) -> None:
    out = redact_text(f"before {text} after")
    assert "4567" not in out
    assert "example.com" not in out
    assert out.startswith("before ")
    assert out.endswith(" after")


def test_ids_and_short_numbers_survive() -> None:
    text = "order SO-HK-24001 offset 1234 partition 3 took 0.25 s"
    assert redact_text(text) == text


def test_processor_masks_nested_values_and_keeps_others() -> None:
    event = {"event": "send_failed", "detail": {"to": "+85291234567"}, "items": ["a@b.co"], "count": 3}
    out = RedactPII()(None, "info", event)
    assert out["detail"] == {"to": "[phone]"}
    assert out["items"] == ["[email]"]
    assert out["count"] == 3


def test_lines_go_to_the_current_stderr_not_the_one_at_configure_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    try:
        configure("INFO", "json")
        first.close()  # e.g. a captured stream that has gone away
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        get_logger("t").info("still_logging", phone="9123 4567")
        assert '"event": "still_logging"' in second.getvalue()
        assert "9123 4567" not in second.getvalue()
    finally:
        structlog.reset_defaults()
