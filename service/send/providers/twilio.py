"""Twilio Programmable Messaging client (``/2010-04-01/Accounts/{Sid}/Messages.json``)
and Twilio's request signature (``X-Twilio-Signature``), which the callback endpoints verify. The
parsers of what those endpoints receive (``parse_status_callback``, ``parse_inbound_message``)
live in ``twilio_reports`` with Twilio's status vocabulary and are re-exported here.

Every failure is translated here into ``service.domain.errors``; nothing above this module sees
an aiohttp exception. Privacy: our errors carry only the provider name and a code (Twilio's
error code, an HTTP status or a short word of our own). Twilio's error ``message`` can echo
the recipient's number ("The 'To' number +852... is not a valid phone number"), so it is
never read; the number, the body and the auth token never reach an exception or its repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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
from service.domain.ports import DeliveryStatus, SendAccepted
from service.domain.status_check import Answer
from service.send.providers.twilio_reports import (
    FINAL_STATUSES,
    PROVIDER,
    REFERENCE_PARAM,
    parse_inbound_message,
    parse_status_callback,
)
from service.send.providers.wire import Reply, parse_retry_after, request

__all__ = [
    "ERROR_CLASSES",
    "PROVIDER",
    "TwilioClient",
    "error_for",
    "parse_inbound_message",
    "parse_retry_after",
    "parse_status_callback",
    "twilio_signature",
    "verify_twilio_signature",
]

API_VERSION: Final = "2010-04-01"
#: How many pages of the message list ``find_sent`` reads before it gives up.
MAX_LOOKUP_PAGES: Final = 3
LOOKUP_PAGE_SIZE: Final = 1000  # Twilio's maximum: a busy number's recent messages in one page

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


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the auth token, of the full
    URL (query included) followed by every POST parameter's name and value, sorted by name."""
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Whether ``signature`` is Twilio's for this URL and form, compared in constant time."""
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to (or replacing those in) its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


class TwilioClient:
    """Sends SMS through Twilio's Messages API; implements ``SmsSender``.

    ``status_callback`` is the base URL of our status endpoint; each message asks Twilio to call
    it back at ``<status_callback>?ref=<reference>``.
    """

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
        return f"{self._base_url}/{API_VERSION}/Accounts/{self._account_sid}/Messages.json"

    def status_callback_url(self, reference: str) -> str | None:
        """The StatusCallback URL for one message, or ``None`` when no callbacks are wanted."""
        if not self._status_callback:
            return None
        return with_query(self._status_callback, **{REFERENCE_PARAM: reference})

    async def send_sms(self, to_e164: str, body: str, *, reference: str) -> SendAccepted:
        form = {"To": to_e164, "From": self._sender, "Body": body}
        if callback := self.status_callback_url(reference):
            form["StatusCallback"] = callback
        reply = await self._call("POST", self.messages_url, data=form)
        if reply.status in (200, 201):
            return _accepted(reply.status, reply.payload)
        raise error_for(reply.status, reply.payload, reply.headers.get("Retry-After"))

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None:
        """The message to ``to_e164`` with this body created at or after ``since``, if Twilio lists one.

        Twilio keeps no reference of ours on a message, so the match is on recipient, body and
        creation time (whole seconds, as Twilio stamps them). Reads at most three pages.
        """
        since_utc = since.astimezone(UTC).replace(microsecond=0)
        url: str | None = self.messages_url
        params: dict[str, str] | None = {
            "To": to_e164,
            "DateSent>": since_utc.date().isoformat(),
            "PageSize": str(LOOKUP_PAGE_SIZE),
        }
        for _ in range(MAX_LOOKUP_PAGES):
            if url is None:
                break
            reply = await self._call("GET", url, params=params)
            if reply.status != 200:
                raise error_for(reply.status, reply.payload, reply.headers.get("Retry-After"))
            page = reply.payload if isinstance(reply.payload, dict) else {}
            for message in page.get("messages") or []:
                if _matches(message, to_e164, body, since_utc):
                    return SendAccepted(PROVIDER, message["sid"], message["status"])
            next_uri = page.get("next_page_uri")
            url = (
                self._base_url + next_uri if isinstance(next_uri, str) and next_uri.startswith("/") else None
            )
            params = None  # the next page's URI carries the filters
        return None

    async def delivery_status(self, message_id: str | None, *, reference: str) -> DeliveryStatus | None:
        """The message's status now (``GET .../Messages/{Sid}.json``); None when Twilio has no such SID."""
        if not message_id:
            return None
        url = f"{self._base_url}/{API_VERSION}/Accounts/{self._account_sid}/Messages/{quote(message_id, safe='')}.json"
        reply = await self._call("GET", url)
        if reply.status == 404:
            return None
        if reply.status != 200 or not isinstance(reply.payload, dict):
            raise error_for(reply.status, reply.payload, reply.headers.get("Retry-After"))
        status = reply.payload.get("status")
        answer = FINAL_STATUSES.get(status, Answer.PENDING) if isinstance(status, str) else Answer.PENDING
        code = reply.payload.get("error_code")  # an integer or null; its message is never read
        known = answer is Answer.UNDELIVERED and isinstance(code, int) and not isinstance(code, bool)
        return DeliveryStatus(answer, str(code) if known else None)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Reply:
        return await request(
            self._session,
            method,
            url,
            provider=PROVIDER,
            client_timeout=self._timeout,
            headers=self._headers,
            params=params,
            data=data,
        )


def _matches(message: Any, to_e164: str, body: str, since: datetime) -> bool:
    if not isinstance(message, dict) or message.get("to") != to_e164 or message.get("body") != body:
        return False
    sid, status, created = message.get("sid"), message.get("status"), message.get("date_created")
    if not (isinstance(sid, str) and sid and isinstance(status, str) and status and isinstance(created, str)):
        return False
    try:
        created_at = parsedate_to_datetime(created)
    except (TypeError, ValueError):
        return False
    if created_at.tzinfo is None:  # RFC 2822 "-0000": UTC with no stated zone
        created_at = created_at.replace(tzinfo=UTC)
    return created_at >= since


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
