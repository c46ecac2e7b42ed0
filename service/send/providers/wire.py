"""The HTTP shell every provider client shares: one request, its failures translated, its body decoded.

Privacy: aiohttp's exceptions can carry the request URL (``Connection timeout to host
https://...?To=%2B852...``), so a network failure becomes our ``ProviderUnavailable`` with only
the exception's type name, and the library exception is not chained (``from None``) so that no
traceback shows it. A response body is decoded here and never kept as text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

from service.domain.errors import ProviderUnavailable

#: A provider's error word we are willing to copy into our own error code: upper-case ASCII only,
#: so nothing a provider echoes (a number, an address) can reach an exception message.
SAFE_WORD: Final = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
FORM: Final = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's answer: status, headers and the decoded JSON body (``None`` when there is none)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive: aiohttp's own multidict
    payload: Any

    def __repr__(self) -> str:
        # The payload may hold the recipient's number: never part of a repr.
        return f"Reply(status={self.status})"


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    provider: str,
    client_timeout: aiohttp.ClientTimeout,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    json_body: Any = None,
) -> Reply:
    """Send one request; a timeout or network failure raises ``ProviderUnavailable``. A form is
    encoded here, once, to bytes (aiohttp's ``FormData`` costs several times more per request)."""
    sent_headers = dict(headers)
    body: bytes | None = None
    if data is not None:
        body = urlencode(data).encode()
        sent_headers.setdefault("Content-Type", FORM)
    try:
        async with session.request(
            method,
            url,
            params=params,
            data=body,
            json=json_body,
            headers=sent_headers,
            timeout=client_timeout,
            allow_redirects=False,
        ) as resp:
            raw = await resp.read()
            status, reply_headers = resp.status, resp.headers.copy()
    except TimeoutError:
        raise ProviderUnavailable(provider, "timeout") from None
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(provider, "network", type(exc).__name__) from None
    return Reply(status, reply_headers, decode_json(raw))


def decode_json(raw: bytes) -> Any:
    """The decoded JSON document, or ``None`` for an empty or non-JSON body (an HTML 502 page, say)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        # The decoder's exception keeps the whole document (number, body) in ``.doc``: drop it.
        return None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def safe_word(value: Any) -> str | None:
    """``value`` when it is a provider's upper-case error word (``UNAUTHORIZED``), else ``None``."""
    return value if isinstance(value, str) and SAFE_WORD.fullmatch(value) else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; ``None`` when absent or not a number of seconds."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
