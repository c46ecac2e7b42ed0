"""Infobip SMS client (``POST /sms/2/text/advanced``, ``GET /sms/1/logs``), and the credentials of
the delivery reports Infobip posts back (``verify_webhook_credentials``). Their parser
(``parse_reports``) lives in ``infobip_reports`` with Infobip's status groups and is re-exported here.

Infobip answers a send in two layers: an HTTP error with ``requestError.serviceException``
(``UNAUTHORIZED``, ``BAD_REQUEST``, ``TOO_MANY_REQUESTS``...) when it refuses the whole request,
and otherwise 200 with one status per message, where the REJECTED group (``groupId`` 5) says
why that message was not taken. Delivery reports later carry an ``error`` (``EC_...``) as well.
``ERROR_CLASSES`` maps every such name we know to our error tree.

Privacy: the exception ``text`` Infobip sends is never read, nor the ``to`` it echoes; codes in
our errors are Infobip's upper-case words only. Reference: hk-sms-facts.md section 4 and
Infobip's "Response status and error codes".
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
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
from service.domain.ports import DeliveryStatus, SendAccepted
from service.domain.status_check import Answer
from service.send.providers.infobip_reports import FINAL_GROUPS, PROVIDER, parse_reports
from service.send.providers.wire import Reply, as_dict, parse_retry_after, request, safe_word

__all__ = [
    "ERROR_CLASSES",
    "PROVIDER",
    "InfobipClient",
    "error_class",
    "error_for",
    "parse_reports",
    "verify_webhook_credentials",
]

SEND_PATH: Final = "/sms/2/text/advanced"
LOGS_PATH: Final = "/sms/1/logs"

#: Infobip status (send response, logs, reports) or error name (reports, logs) -> our error.
#: Our numbers are already validated Hong Kong mobiles, so where Infobip says the destination or
#: its prefix is wrong, that is Infobip's routing for our account: another provider may deliver.
ERROR_CLASSES: Final[dict[str, type[ProviderError]]] = {
    # statuses of the REJECTED group (groupId 5)
    "REJECTED_NETWORK": ProviderRejected,  # network not covered by our account
    "REJECTED_PREFIX_MISSING": ProviderRejected,
    "REJECTED_DESTINATION": ProviderRejected,
    "REJECTED_DND": RecipientOptedOut,  # the subscriber's do-not-disturb registration
    "REJECTED_SOURCE": ContentRejected,  # sender id not registered
    "REJECTED_SENDER": ContentRejected,  # sender id blocklisted
    "REJECTED_NOT_ENOUGH_CREDITS": ProviderRejected,
    "REJECTED_PREPAID_PACKAGE_EXPIRED": ProviderRejected,
    "REJECTED_DESTINATION_BLOCKLISTED": InvalidRecipient,
    "REJECTED_DESTINATION_NOT_REGISTERED": ProviderRejected,  # a test account
    "REJECTED_ROUTE_NOT_AVAILABLE": ProviderRejected,
    "REJECTED_FLOODING_FILTER": ContentRejected,
    "REJECTED_SYSTEM_ERROR": ProviderUnavailable,  # Infobip says retry
    "REJECTED_DUPLICATE_MESSAGE_ID": ProviderUnavailable,  # an earlier attempt got through: reconcile
    "REJECTED_INVALID_UDH": ProviderRejected,
    "REJECTED_MESSAGE_TOO_LONG": ContentRejected,
    "MISSING_TO": ProviderRejected,
    "SIGNALS_BLOCKED": ContentRejected,  # anti-fraud
    "UNDELIVERABLE_REJECTED_PLATFORM": ProviderRejected,
    # errors: the number does not exist or cannot take SMS (Infobip: permanent)
    "EC_UNKNOWN_SUBSCRIBER": InvalidRecipient,
    "EC_ILLEGAL_SUBSCRIBER": InvalidRecipient,
    "EC_TELESERVICE_NOT_PROVISIONED": InvalidRecipient,
    "EC_ILLEGAL_EQUIPMENT": InvalidRecipient,
    "EC_DEST_ADDRESS_UNABLE_TO_RECEIVE_SMS": InvalidRecipient,
    "EC_DESTINATION_NOT_SMS_PROVISIONED": InvalidRecipient,
    "EC_DEST_ADDRESS_SUSPENDED": InvalidRecipient,
    "EC_DEACTIVATED_LIST": InvalidRecipient,
    "EC_BLACKLISTED_DESTINATIONADDRESS": InvalidRecipient,
    "EC_IMSI_BLACKLISTED": InvalidRecipient,
    # errors: the subscriber said no
    "EC_CONTENT_BLOCKED": RecipientOptedOut,  # STOP
    "EC_SC_BLOCKED_BY_END_USER": RecipientOptedOut,
    # errors: body or sender filtered
    "EC_REJECTED_SPAM_BY_OPERATOR": ContentRejected,
    "EC_CONTENT_BLOCKED_BY_OPERATOR": ContentRejected,
    "EC_BLOCKED_BY_CAMPAIGN_BLACKLIST": ContentRejected,
    "EC_SIGNALS_BLOCKED": ContentRejected,
    "EC_INVALID_SOURCE_ADDRESS": ContentRejected,
    "EC_BLACKLISTED_SENDERADDRESS": ContentRejected,
    "EC_MSG_TEXT_TOO_LONG": ContentRejected,
    "EC_DESTINATION_FLOODING": ContentRejected,
    "EC_DESTINATION_TXT_FLOODING": ContentRejected,
    # errors: our account
    "EC_ACCOUNT_ACCESS_DENIED": ProviderRejected,
    "EC_MONTHLY_LIMIT_REACHED": ProviderRejected,
    # errors: transient at the handset or network (Infobip: not permanent)
    "EC_ABSENT_SUBSCRIBER": ProviderUnavailable,
    "EC_ABSENT_SUBSCRIBER_SM": ProviderUnavailable,
    "EC_UNIDENTIFIED_SUBSCRIBER": ProviderUnavailable,
    "EC_SUBSCRIBER_BUSY_FOR_MT_SMS": ProviderUnavailable,
    "EC_SM_DELIVERY_FAILURE": ProviderUnavailable,
    "EC_SM_DF_MEMORYCAPACITYEXCEEDED": ProviderUnavailable,
    "EC_CALL_BARRED": ProviderUnavailable,
    "EC_SYSTEM_FAILURE": ProviderUnavailable,
    "EC_NO_RESPONSE": ProviderUnavailable,
    "EC_UNKNOWN_ERROR": ProviderUnavailable,
    # HTTP-level ``serviceException.messageId`` (the status decides where it is not listed)
    "UNAUTHORIZED": ProviderRejected,
    "FORBIDDEN": ProviderRejected,
    "BAD_REQUEST": ProviderRejected,
    "INVALID_ARGUMENT": ProviderRejected,
    "TOO_MANY_REQUESTS": RateLimited,
    "GENERAL_ERROR": ProviderUnavailable,
}

#: Status groups that mean Infobip took the message (0 ACCEPTED, 1 PENDING, 3 DELIVERED).
ACCEPTED_GROUPS: Final = frozenset({"ACCEPTED", "PENDING", "DELIVERED"})
REJECTED_GROUP_ID: Final = 5

Item = tuple[str, str, str]
"""One message of ``send_many``: (to_e164, body, reference)."""


def verify_webhook_credentials(authorization: str | None, user: str, password: str) -> bool:
    """Whether an ``Authorization`` header is HTTP Basic with our webhook's user and password
    (Infobip's delivery reports carry them), compared in constant time."""
    if not authorization or not authorization.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(authorization[6:], validate=True)
    except binascii.Error:
        return False
    return hmac.compare_digest(given, f"{user}:{password}".encode())


def error_class(name: str, *, permanent: bool | None = None) -> type[ProviderError]:
    """Our error for an Infobip status or error name; an unknown one is judged by ``permanent``."""
    if cls := ERROR_CLASSES.get(name):
        return cls
    return ProviderRejected if permanent in (True, None) else ProviderUnavailable


class InfobipClient:
    """Sends SMS through Infobip's SMS API; implements ``SmsSender``.

    ``notify_url`` is our delivery-report endpoint; ``reference`` travels as the message's
    ``messageId`` and ``callbackData``, so reports and log look-ups name our attempt.
    """

    name: str = PROVIDER

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        sender: str,
        notify_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json", "Authorization": f"App {api_key}"}
        self._sender = sender
        self._notify_url = notify_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"InfobipClient(base_url={self._base_url!r})"

    async def send_sms(self, to_e164: str, body: str, *, reference: str) -> SendAccepted:
        [result] = await self._send([(to_e164, body, reference)])
        if isinstance(result, ProviderError):
            raise result
        return result

    async def send_many(self, items: Sequence[Item]) -> list[SendAccepted | ProviderError]:
        """Send every item in one request; one result per item, in order, never raising.

        A failure of the whole request (network, 401, 429...) is that error for every item.
        """
        if not items:
            return []
        try:
            return await self._send(items)
        except ProviderError as exc:
            return [_copy(exc) for _ in items]

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None:
        """The message sent under ``reference`` (our ``messageId``), unless Infobip rejected it."""
        reply = await self._call("GET", LOGS_PATH, params={"messageId": reference})
        if reply.status != 200:
            raise error_for(reply)
        results = reply.payload.get("results") if isinstance(reply.payload, dict) else None
        for entry in results if isinstance(results, list) else []:
            if not isinstance(entry, dict) or entry.get("messageId") != reference:
                continue
            status = as_dict(entry.get("status"))
            if status.get("groupId") == REJECTED_GROUP_ID or status.get("groupName") == "REJECTED":
                return None
            return SendAccepted(PROVIDER, reference, safe_word(status.get("name")) or "UNKNOWN")
        return None

    async def delivery_status(self, message_id: str | None, *, reference: str) -> DeliveryStatus | None:
        """The message's status now, from its log (``GET /sms/1/logs?messageId=``, our reference);
        None when Infobip lists no such message (logs are kept for 48 hours)."""
        reply = await self._call("GET", LOGS_PATH, params={"messageId": reference})
        if reply.status != 200:
            raise error_for(reply)
        results = reply.payload.get("results") if isinstance(reply.payload, dict) else None
        for entry in results if isinstance(results, list) else []:
            if not isinstance(entry, dict) or entry.get("messageId") != reference:
                continue
            status, error = as_dict(entry.get("status")), as_dict(entry.get("error"))
            answer = FINAL_GROUPS.get(str(status.get("groupName")), Answer.PENDING)
            code = safe_word(error.get("name")) or safe_word(status.get("name"))
            if code == "NO_ERROR":
                code = safe_word(status.get("name"))
            return DeliveryStatus(answer, code if answer is Answer.UNDELIVERED else None)
        return None

    def payload(self, items: Sequence[Item]) -> dict[str, Any]:
        """The JSON of one ``/sms/2/text/advanced`` request for these items."""
        messages: list[dict[str, Any]] = []
        for to_e164, body, reference in items:
            message: dict[str, Any] = {
                "destinations": [{"to": to_e164.removeprefix("+"), "messageId": reference}],
                "from": self._sender,
                "text": body,
                "callbackData": reference,
            }
            if self._notify_url:
                message["notifyUrl"] = self._notify_url
                message["notifyContentType"] = "application/json"
            messages.append(message)
        return {"messages": messages}

    async def _send(self, items: Sequence[Item]) -> list[SendAccepted | ProviderError]:
        reply = await self._call("POST", SEND_PATH, json_body=self.payload(items))
        if reply.status != 200:
            raise error_for(reply)
        answered = reply.payload.get("messages") if isinstance(reply.payload, dict) else None
        answered = [m for m in answered if isinstance(m, dict)] if isinstance(answered, list) else []
        by_id = {m.get("messageId"): m for m in answered}
        results: list[SendAccepted | ProviderError] = []
        for index, (_, _, reference) in enumerate(items):
            entry = by_id.get(reference) or (answered[index] if index < len(answered) else None)
            results.append(_message_result(entry))
        return results

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json_body: Any = None
    ) -> Reply:
        return await request(
            self._session,
            method,
            self._base_url + path,
            provider=PROVIDER,
            client_timeout=self._timeout,
            headers=self._headers,
            params=params,
            json_body=json_body,
        )


def _message_result(entry: dict[str, Any] | None) -> SendAccepted | ProviderError:
    """One message's outcome from the 200 response."""
    if entry is None:
        # Infobip answered for fewer messages than we sent: this one may or may not be on its way.
        return ProviderUnavailable(PROVIDER, "200", "no result for the message")
    status = as_dict(entry.get("status"))
    message_id, group = entry.get("messageId"), status.get("groupName")
    name = safe_word(status.get("name"))
    if group in ACCEPTED_GROUPS and isinstance(message_id, str) and message_id:
        return SendAccepted(PROVIDER, message_id, name or str(group))
    if group == "REJECTED" or status.get("groupId") == REJECTED_GROUP_ID:
        return error_class(name or "")(PROVIDER, name or "REJECTED")
    return ProviderUnavailable(PROVIDER, name or "200", "unreadable message status")


def error_for(reply: Reply) -> ProviderError:
    """Our error for a refused request; reads only Infobip's error word, never its ``text``."""
    status, payload = reply.status, reply.payload
    word = _error_word(payload)
    code = word or str(status)
    if status == 429:
        cls: type[ProviderError] = RateLimited
    elif status >= 500:
        cls = ProviderUnavailable
    elif word in ERROR_CLASSES:
        cls = ERROR_CLASSES[word]
    else:
        cls = ProviderRejected  # 400, 401, 403, 404 and whatever else Infobip refuses
    if cls is RateLimited:
        return RateLimited(PROVIDER, code, parse_retry_after(reply.headers.get("Retry-After")))
    return cls(PROVIDER, code)


def _error_word(payload: Any) -> str | None:
    """``requestError.serviceException.messageId`` (API v1/v2) or ``errorCode`` (API v3)."""
    if not isinstance(payload, dict):
        return None
    request_error = payload.get("requestError")
    if isinstance(request_error, dict):
        for key in ("serviceException", "policyException"):
            exception = request_error.get(key)
            if isinstance(exception, dict):
                return safe_word(exception.get("messageId"))
    return safe_word(payload.get("errorCode"))


def _copy(exc: ProviderError) -> ProviderError:
    """A fresh instance of ``exc`` for each item, so that no two results share a traceback."""
    if isinstance(exc, RateLimited):
        return RateLimited(exc.provider, exc.code, exc.retry_after)
    clone: Callable[[str, str], ProviderError] = type(exc)
    return clone(exc.provider, exc.code)
