"""Twilio Programmable Messaging client (``POST /2010-04-01/Accounts/{Sid}/Messages.json``).

Every failure is translated here into ``service.domain.errors``; nothing above this module sees
an aiohttp exception. Privacy: our errors carry only the provider name and a code (Twilio's
error code, an HTTP status or a short word of our own). Twilio's error ``message`` can echo
the recipient's number ("The 'To' number +852... is not a valid phone number"), so it is
never read; the number, the body and the auth token never reach an exception or its repr.
"""

from __future__ import annotations

import math
from typing import Any, Final

import aiohttp

from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
)
from service.domain.ports import SendAccepted

PROVIDER: Final = "twilio"

#: Twilio error code -> our error. A code not listed falls back on the HTTP status
#: (429 -> RateLimited, 5xx -> ProviderUnavailable, any other -> ProviderRejected).
#: Source: the "SMS error handling" table in hk-sms-facts.md, section 4.
ERROR_CLASSES: Final[dict[int, type[ProviderError]]] = {
    # the number is invalid or cannot take SMS: no retry, no SMS failover
    21211: InvalidRecipient,  # invalid 'To' number
    21614: InvalidRecipient,  # not a mobile number
    21635: InvalidRecipient,  # landline
    30005: InvalidRecipient,  # unknown destination handset
    30006: InvalidRecipient,  # landline or unreachable carrier
    # the recipient opted out: record it, never route round it
    21610: RecipientOptedOut,  # replied STOP to this sender
    30004: RecipientOptedOut,  # message blocked
    # body or sender filtered: another provider may accept it
    30007: ContentRejected,  # carrier filtering
    30042: ContentRejected,
    # transient at Twilio or the carrier: retry with backoff, then fail over
    20429: RateLimited,  # too many requests
    30003: ProviderUnavailable,  # handset unreachable; Twilio says retry
    30008: ProviderUnavailable,  # unknown error
    30036: ProviderUnavailable,  # validity period expired
    # our account, credentials or sender: permanent for this provider
    20003: ProviderRejected,  # authentication failed
    21408: ProviderRejected,  # region not enabled
    21611: ProviderRejected,  # sender queue full
    30001: ProviderRejected,  # queue overflow
    30002: ProviderRejected,  # account suspended
}


class TwilioClient:
    """Sends SMS through Twilio's Messages API; implements ``SmsSender``."""

    name: str = PROVIDER

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        status_callback: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._account_sid = account_sid
        self._headers = {
            "Accept": "application/json",
            "Authorization": aiohttp.encode_basic_auth(account_sid, auth_token),
        }
        self._sender = sender
        self._status_callback = status_callback
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        # Explicit, so that no attribute added later can bring the token into a repr.
        return f"TwilioClient(base_url={self._base_url!r}, account_sid={self._account_sid!r})"

    @property
    def messages_url(self) -> str:
        return f"{self._base_url}/2010-04-01/Accounts/{self._account_sid}/Messages.json"

    async def send_sms(self, to_e164: str, body: str) -> SendAccepted:
        form = {"To": to_e164, "From": self._sender, "Body": body}
        if self._status_callback:
            form["StatusCallback"] = self._status_callback
        try:
            async with self._session.post(
                self.messages_url,
                data=form,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                payload = await _read_json(resp)
        except TimeoutError as exc:
            raise ProviderUnavailable(PROVIDER, "timeout") from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(PROVIDER, "network", type(exc).__name__) from exc

        if status in (200, 201):
            return _accepted(status, payload)
        raise error_for(status, payload, retry_after)


async def _read_json(resp: aiohttp.ClientResponse) -> Any:
    """The decoded JSON body, or ``None`` when there is none (an HTML 502 page, say)."""
    try:
        return await resp.json(content_type=None)
    except ValueError:
        # The decoder's exception keeps the whole document (number, body) in ``.doc``: drop it.
        return None


def _accepted(status: int, payload: Any) -> SendAccepted:
    if isinstance(payload, dict):
        sid, state = payload.get("sid"), payload.get("status")
        if isinstance(sid, str) and sid and isinstance(state, str) and state:
            return SendAccepted(PROVIDER, sid, state)
    # Twilio said yes but we cannot tell to what: the message may well be on its way.
    raise ProviderUnavailable(PROVIDER, str(status), "unreadable success response")


def error_for(status: int, payload: Any, retry_after: str | None = None) -> ProviderError:
    """Our error for a non-success response; reads only ``code`` from Twilio's error body."""
    twilio_code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(twilio_code, int) or isinstance(twilio_code, bool):
        twilio_code = None
    code = str(twilio_code if twilio_code is not None else status)

    cls = ERROR_CLASSES.get(twilio_code) if twilio_code is not None else None
    if cls is None:
        if status == 429:
            cls = RateLimited
        elif status >= 500:
            cls = ProviderUnavailable
        else:
            cls = ProviderRejected
    if cls is RateLimited:
        return RateLimited(PROVIDER, code, parse_retry_after(retry_after))
    return cls(PROVIDER, code)


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
