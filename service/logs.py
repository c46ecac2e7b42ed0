"""Structured logging. Only ``cli`` calls ``configure``; every other module just gets a logger.

Every line goes through one chain, whoever wrote it: our structlog loggers, and the standard
library's loggers (aiohttp's server and access logs, asyncio, aiokafka, anything else) through a
``structlog.stdlib.ProcessorFormatter`` on the root logger. The chain ends with the redaction
processor and the JSON renderer:

- ``RedactPII`` masks anything shaped like a phone number or an email address in every value,
  strings or not (ints, nested dicts and lists, exceptions, other objects by their ``str``), so
  personal data cannot reach a sink even if a caller passes it by mistake. Dates, times, UTC
  offsets, UUIDs and IP addresses are left alone.
- ``DropRequestData`` replaces an HTTP parser error (a bad or oversized request line or header)
  by its class and status: its message quotes the raw bytes, e.g. a Cookie with a token.
- Extra fields of standard-library records are not copied (aiohttp's access logger puts every
  header it formats there). ``AccessLog`` is the access logger of our HTTP servers: method,
  route pattern, status, size and duration, never a header, a query or a path's token.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

# Digits (any script, so full-width too) and what people put between them.
_SEP = r"[\s\-./_()\u2010-\u2015\uff08\uff09\uff0d\uff0e\uff0f\uff3f]"
_EMAIL = re.compile(r"[\w.+-]+[@\uff20][\w-]+(?:\.[\w-]+)+")
# Kept as they are: dates and date-times (ISO, with a UTC offset; or d/m/y), times, UUIDs, IPv4.
_KEEP = (
    r"(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?"
    r"|\d{1,2}[-/.]\d{1,2}[-/.](?:19|20)\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?"
)
# A phone: 8 to 15 digits, each pair separated by at most two separators, with an optional
# +, 00 or bracket before, and no letter or digit right before or after.
_PHONE = r"[+\uff0b(\uff08]?\d(?:" + _SEP + r"{0,2}\d){7,14}"
_SCAN = re.compile(
    rf"(?<![^\W_])(?:(?P<email>{_EMAIL.pattern})|(?P<keep>{_KEEP})|(?P<phone>{_PHONE}))(?![^\W_])"
    rf"|(?P<email2>{_EMAIL.pattern})"
)
# An int that is a Hong Kong mobile (8 digits from 4 to 9), optionally with 852 before it.
_HK_MOBILE_INT = re.compile(r"(?:852)?[4-9]\d{7}")


def _sub(match: re.Match[str]) -> str:
    if match.group("email") or match.group("email2"):
        return "[email]"
    if match.group("phone"):
        return "[phone]"
    return match.group(0)


def redact_text(text: str) -> str:
    """Mask emails and phone-like digit runs in a string; dates, times, UUIDs and IPs stay."""
    return _SCAN.sub(_sub, text)


def _redact(value: Any, key: str = "") -> Any:  # noqa: PLR0911  # one branch per kind of value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):  # an offset is a count, never a phone
        return "[phone]" if not key.endswith("offset") and _HK_MOBILE_INT.fullmatch(str(value)) else value
    if isinstance(value, Mapping):
        return {_redact(k) if isinstance(k, str) else k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v, key) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return redact_text(str(value))  # UUIDs, datetimes, paths, objects: their text, masked


class RedactPII:
    """structlog processor: masks phone numbers and emails in every field of an event."""

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            event_dict[key] = _redact(value, key)
        return event_dict


class DropRequestData:
    """structlog processor: an HTTP parser error is logged by class and status, never its message.

    aiohttp's parser errors quote the raw request bytes (an oversized Cookie header, say, token and
    all) and aiohttp logs them with their traceback; this keeps only what an operator needs.
    """

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        exc_info = event_dict.get("exc_info")
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        if isinstance(exc, HttpProcessingError):
            del event_dict["exc_info"]
            event_dict["error"] = type(exc).__name__
            event_dict["status"] = exc.code
        return event_dict


class AccessLog(AbstractAccessLogger):
    """aiohttp access logger (``AppRunner(access_log_class=AccessLog)``): one structured line per
    request with method, route pattern, status, size and duration; never a header, a query or a
    path (the route is the pattern, ``/u/{token}``, so no token is logged).

    Failures (4xx, 5xx) are logged at INFO, the rest at DEBUG (provider callbacks come by the
    hundred per second).
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        match_info = getattr(request, "match_info", None)
        resource = match_info.route.resource if match_info is not None else None
        log = _ACCESS.info if response.status >= 400 else _ACCESS.debug
        log(
            "http_request",
            method=request.method,
            route=resource.canonical if resource is not None else "unmatched",
            status=response.status,
            bytes=response.body_length,
            duration_ms=round(time * 1000, 1),
        )


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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # the stream is sys.stderr, late-bound
    """The root logger's handler: like ``_StderrLogger``, it writes to the current ``sys.stderr``."""

    def __init__(self) -> None:
        super().__init__()

    @property  # a read-only view of sys.stderr instead of a pinned stream
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(level: str = "INFO", fmt: str = "json", *, quiet_kafka: bool = False) -> None:
    """``quiet_kafka``: a one-shot command says in one line why the broker failed, so aiokafka's
    own connection errors are not logged; every call sets it again (nothing stays from a previous one)."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL if quiet_kafka else logging.NOTSET)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    # The tail every line goes through, ours and the standard library's alike.
    tail: list[structlog.types.Processor] = [
        DropRequestData(),
        structlog.processors.format_exc_info,
        RedactPII(),
        renderer,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,  # True would hide loggers from structlog.testing.capture_logs
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # no ExtraAdder: aiohttp's access logger passes every header it formats as an extra
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's own access logger formats headers (Referer, User-Agent, any %{X}i) into its line:
    # silenced, so a server built without ``AccessLog`` logs no request rather than its headers.
    logging.getLogger("aiohttp.access").disabled = True
    logging.captureWarnings(True)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]  # structlog returns Any


_ACCESS = get_logger("http.access")
