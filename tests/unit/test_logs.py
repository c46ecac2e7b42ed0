from __future__ import annotations

import io
import json
import logging
import sys

import aiohttp
import pytest
import structlog
from aiohttp import web

from service.http.server import start_http
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


# Hong Kong numbers in every way people write them, and an international one.
PHONES = [
    "91234567",
    "9123 4567",
    "9123-4567",
    "9123.4567",
    "9123/4567",
    "9123_4567",
    "9123　4567",  # ideographic space
    "９１２３４５６７",
    "９１２３－４５６７",
    "９１２３／４５６７",
    "85291234567",
    "852 9123 4567",
    "852-9123-4567",
    "852/9123/4567",
    "852_9123_4567",
    "+85291234567",
    "+852 9123 4567",
    "+852-9123-4567",
    "+852.9123.4567",
    "+852/9123/4567",
    "+852_9123_4567",
    "+852 9123-4567",
    "(852) 9123 4567",
    "(+852) 9123 4567",
    "00852 9123 4567",
    "00852-9123-4567",
    "0085291234567",
    "＋８５２ ９１２３ ４５６７",
    "（852）9123 4567",
    "+44 7911 123456",
]


@pytest.mark.parametrize("phone", PHONES)
def test_every_way_of_writing_a_phone_is_masked(phone: str) -> None:
    for text in (phone, f"to {phone}.", f"phone={phone}", f"[{phone}]", f"tel:{phone}"):
        out = redact_text(text)
        assert "[phone]" in out, text
        for tail in ("4567", "４５６７", "123456"):
            assert tail not in out, text


@pytest.mark.parametrize(
    "email", ["chan.tai.man@example.com", "A.B+tag@mail.example.com.hk", "x_y@example.org", "陳@example.hk"]
)
def test_emails_are_masked(email: str) -> None:
    out = redact_text(f"mail {email}, thanks")
    assert out == "mail [email], thanks"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20 09:12",
        "2026-11-20T09:12:00+08:00",
        "2026-11-20T01:12:00.123456Z",
        "2026-11-20 09:12:00 +0800",
        "2026-11-20",
        "2026/11/20 09:12",
        "2026.11.20",
        "20/11/2026",
        "20-11-2026 09:12",
        "11/20/2026",
        "at 09:12:30.5 +08:00",
        "window 10:00-19:00",
        "1b4e28ba-2fa1-11d2-883f-0800200c9a66",
        "12345678-1234-5678-1234-567812345678",
        "peer 192.168.100.200:5432",
        "order SO-HK-24001 offset 1234 partition 3 took 0.25 s",
        "ttl 3600 s, 20 segments, 4 attempts",
    ],
)
def test_dates_times_offsets_uuids_and_addresses_are_not_masked(text: str) -> None:
    assert redact_text(text) == text


def test_a_phone_next_to_a_date_is_masked_and_the_date_kept() -> None:
    out = redact_text("2026-11-20 09:12 sms to 9123 4567 at 09:13")
    assert out == "2026-11-20 09:12 sms to [phone] at 09:13"


class Carrier:
    def __str__(self) -> str:
        return "Carrier(to=+852 9123 4567)"


def test_values_that_are_not_strings_are_masked_too() -> None:
    event = {
        "event": "x",
        "to": 91234567,
        "e164": 85291234567,
        "nested": {"list": [{"deep": ("9123 4567", 61234567)}], "+85291234567": "key too"},
        "error": ValueError("bad number +852 9123 4567 for a@b.co"),
        "obj": Carrier(),
        "offset": 91234567,  # a Kafka offset is a count
        "count": 12,
        "ratio": 0.5,
        "ok": True,
        "none": None,
    }
    out = RedactPII()(None, "info", event)
    assert out["to"] == "[phone]"
    assert out["e164"] == "[phone]"
    assert out["nested"] == {"list": [{"deep": ["[phone]", "[phone]"]}], "[phone]": "key too"}
    assert out["error"] == "ValueError: bad number [phone] for [email]"
    assert out["obj"] == "Carrier(to=[phone])"
    assert (out["offset"], out["count"], out["ratio"], out["ok"], out["none"]) == (
        91234567,
        12,
        0.5,
        True,
        None,
    )


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_standard_library_logging_goes_through_the_json_chain_and_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    try:
        configure("INFO", "json")
        logging.getLogger("aiokafka.consumer").warning(
            "lost %s", "+852 9123 4567", extra={"phone": "9123 4567"}
        )
        try:
            raise RuntimeError("refused for a@example.com")
        except RuntimeError:
            logging.getLogger("asyncio").exception("task failed")
        logging.getLogger("some.lib").debug("hidden below INFO")
    finally:
        structlog.reset_defaults()
        _reset_root()
    lines = _lines(err.getvalue())  # every line is JSON
    assert [(d["logger"], d["level"], d["event"]) for d in lines] == [
        ("aiokafka.consumer", "warning", "lost [phone]"),
        ("asyncio", "error", "task failed"),
    ]
    assert "phone" not in lines[0]  # extras are not copied
    assert "RuntimeError: refused for [email]" in str(lines[1]["exception"])
    assert "9123" not in err.getvalue()
    assert "example.com" not in err.getvalue()


def _reset_root() -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").disabled = False
    logging.captureWarnings(False)


async def test_http_logs_never_hold_a_header_even_of_a_bad_request(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure("DEBUG", "json")
    secret = "ADMIN-TOKEN-s3cr3t"

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/u/{token}", hello)
    runner, port = await start_http(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            headers = {
                "Cookie": f"cs={secret}",
                "User-Agent": secret,
                "Referer": secret,
                "Authorization": secret,
            }
            async with http.get(f"http://127.0.0.1:{port}/u/{secret}?q={secret}", headers=headers) as r:
                assert r.status == 200
            async with http.get(
                f"http://127.0.0.1:{port}/u/x", headers={"Cookie": f"cs={secret}" + "x" * 9000}
            ) as r:
                assert r.status == 400
    finally:
        await runner.cleanup()
        structlog.reset_defaults()
        _reset_root()
    text = err.getvalue()
    assert secret not in text
    lines = _lines(text)
    assert {"event": "http_request", "method": "GET", "route": "/u/{token}", "status": 200}.items() <= lines[
        0
    ].items()
    bad = [d for d in lines if d.get("logger") == "aiohttp.server"]
    assert bad, text
    assert bad[0]["status"] == 400
    assert "exception" not in bad[0]


def test_a_one_shot_commands_quiet_kafka_does_not_outlive_it(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    try:
        configure("INFO", "json", quiet_kafka=True)
        logging.getLogger("aiokafka.client").error("Unable connect")
        assert err.getvalue() == ""  # the command's own line says why
        configure("INFO", "json")
        logging.getLogger("aiokafka.client").error("Unable connect")
    finally:
        structlog.reset_defaults()
        _reset_root()
    assert [d["event"] for d in _lines(err.getvalue())] == ["Unable connect"]
