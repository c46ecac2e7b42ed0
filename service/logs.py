"""Structured logging. Only ``cli`` calls ``configure``; every other module just gets a logger.

A redaction processor sits last before the renderer: anything that looks like a phone number
or an email address is masked in every value, so personal data cannot reach a sink even if
a caller passes it by mistake.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# An email, or a run of 8+ digits possibly broken by spaces, dashes, dots or brackets, with an optional +.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])[+＋]?(?:[\d０-９][\s\-().]{0,2}){8,15}(?![\w])")


def redact_text(text: str) -> str:
    """Mask emails and phone-like digit runs in a string."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


class RedactPII:
    """structlog processor: masks phone numbers and emails in every field of an event."""

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if isinstance(value, str | dict | list | tuple):
                event_dict[key] = _redact(value)
        return event_dict


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now*.

    ``PrintLoggerFactory(file=sys.stderr)`` would pin the stream object of the moment
    ``configure`` ran; when that was a temporary capture (a test, a redirected CLI call) every
    later line fails with "I/O operation on closed file".
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = err = critical = fatal = exception = failure = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _STDERR


_STDERR = _StderrLogger()


def configure(level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            RedactPII(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,  # True would hide loggers from structlog.testing.capture_logs
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]  # structlog returns Any
