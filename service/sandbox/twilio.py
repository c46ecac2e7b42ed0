"""Twilio's Messages API, faithfully enough for the official SDK (HTTP basic auth, account SID + token):

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json     form: To, From | MessagingServiceSid, Body,
                                                             StatusCallback
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json     To, From, DateSent, DateSent<, DateSent>,
                                                             PageSize, Page (newest first)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json

Every message moves to ``sent`` and then ``delivered`` (or ``undelivered`` with ErrorCode 30003 or
30005, at the fault's ``undelivered_rate``), as its resource shows; a message sent with a
StatusCallback also gets a status callback for each, posted form-encoded and signed with
``X-Twilio-Signature`` over the exact callback URL (a callback that fails is not retried,
like Twilio's default).
A fault's ``error_code`` is an HTTP status (500, 429...) or a Twilio error code (21211, 30008...).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import uuid
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from service.sandbox.core import STATE, SandboxState, count_segments
from service.sandbox.faults import Fault, is_int
from service.send.providers.twilio import twilio_signature

PROVIDER: Final = "twilio"
API_PREFIX: Final = "/2010-04-01/Accounts"
E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")

#: Twilio's error messages; like Twilio's, 21211 echoes the number (our client must not).
ERROR_MESSAGES: Final[dict[int, str]] = {
    20001: "Invalid value for {path}",
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
}
#: HTTP status for a Twilio error code; any other code is answered with 400.
CODE_STATUS: Final[dict[int, int]] = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}
#: The ErrorCode of an undelivered message: handset unreachable, unknown handset.
UNDELIVERED_CODES: Final[dict[int, str]] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
}
DEFAULT_PAGE_SIZE: Final = 50


def valid_error_code(code: Any) -> bool:
    return is_int(code) and code >= 100


def fault_response(fault: Fault) -> tuple[int, int]:
    """The (HTTP status, Twilio code) a fault answers with."""
    code = int(fault.error_code)
    if code < 600:
        return code, 20003 if code == 401 else 20000 + code
    return CODE_STATUS.get(code, 400), code


def twilio_error(
    code: int, status: int, *, to: str = "", path: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    message = ERROR_MESSAGES.get(code, f"Sandbox fault {code}").format(to=to, path=path)
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(payload, status=status, headers=headers)


def authorized(state: SandboxState, path_sid: str, header: str | None) -> bool:
    """Whether the path's account and the basic-auth credentials are the configured ones."""
    scheme, _, encoded = (header or "").partition(" ")
    try:
        login, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return False
    return (
        scheme.lower() == "basic"
        and sep == ":"
        and hmac.compare_digest(path_sid.encode(), state.account_sid.encode())
        and hmac.compare_digest(login.encode(), state.account_sid.encode())
        and hmac.compare_digest(password.encode(), state.auth_token.encode())
    )


def _unauthorized() -> web.Response:
    return twilio_error(20003, 401, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})


def accept(
    state: SandboxState, to: str, sender: str | None, body: str, service_sid: str | None
) -> dict[str, Any]:
    """Record a message and return its Twilio resource."""
    sid, now = "SM" + state.new_id(), state.now()
    uri = f"{API_PREFIX}/{state.account_sid}/Messages/{sid}"
    stamp = format_datetime(now)
    resource: dict[str, Any] = {
        "account_sid": state.account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": stamp,
        "date_sent": stamp,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service_sid,
        "num_media": "0",
        "num_segments": str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # With a Messaging Service, Twilio's first status is "accepted".
        "status": "accepted" if service_sid else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }
    state.resources[sid] = resource
    state.record(PROVIDER, sid, to, sender, body, at=now)
    return resource


def _invalid_send(to: str, sender: str, body: str, service_sid: str, callback: str) -> web.Response | None:
    """Twilio's 400 for a send missing a parameter or with a malformed number or callback URL."""
    if not to:
        return twilio_error(21604, 400)
    if not body:
        return twilio_error(21602, 400)
    if not sender and not service_sid:
        return twilio_error(21603, 400)
    if not E164.fullmatch(to):
        return twilio_error(21211, 400, to=to)
    if callback and (urlsplit(callback).scheme not in ("http", "https") or not urlsplit(callback).hostname):
        return twilio_error(21609, 400)
    return None


async def create_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not authorized(state, request.match_info["account_sid"], request.headers.get("Authorization")):
        return _unauthorized()
    fault = await state.admit(PROVIDER)
    form = await request.post()
    to, sender, body, service_sid, callback = (
        str(form.get(name) or "") for name in ("To", "From", "Body", "MessagingServiceSid", "StatusCallback")
    )
    if fault:
        status, code = fault_response(fault)
        headers = {"Retry-After": str(fault.retry_after or 1)} if status == 429 else None
        return twilio_error(code, status, to=to, headers=headers)
    if error := _invalid_send(to, sender, body, service_sid, callback):
        return error
    resource = accept(state, to, sender or None, body, service_sid or None)
    # The message goes on to its final status whether or not anyone is called back about it.
    error_code = state.rng.choice(sorted(UNDELIVERED_CODES)) if state.undelivered(PROVIDER) else None
    state.callbacks.spawn(PROVIDER, _status_callbacks(state, dict(resource), callback or None, error_code))
    return web.json_response(resource, status=201)


async def _status_callbacks(
    state: SandboxState, resource: dict[str, Any], url: str | None, error_code: int | None
) -> None:
    """``sent``, then ``delivered`` or ``undelivered``: the message's statuses (what ``fetch_message``
    shows), each also posted as a status callback when the message named a URL."""
    delay = state.callback_delay_s(PROVIDER)
    for status in ("sent", "undelivered" if error_code else "delivered"):
        if delay:
            await asyncio.sleep(delay)
        params = {
            "AccountSid": state.account_sid,
            "ApiVersion": "2010-04-01",
            "From": resource["from"] or "",
            "MessageSid": resource["sid"],
            "MessageStatus": status,
            "SmsSid": resource["sid"],
            "SmsStatus": status,
            "To": resource["to"],
        }
        if status == "undelivered" and error_code:
            params["ErrorCode"] = str(error_code)
        if stored := state.resources.get(resource["sid"]):
            stored["status"], stored["date_updated"] = status, format_datetime(state.now())
            if status == "undelivered":
                stored["error_code"], stored["error_message"] = (
                    error_code,
                    UNDELIVERED_CODES.get(error_code or 0),
                )
        if url is None:
            continue
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(state.auth_token, url, params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        await state.callbacks.post(PROVIDER, url, urlencode(params).encode(), headers)


async def fetch_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not authorized(state, request.match_info["account_sid"], request.headers.get("Authorization")):
        return _unauthorized()
    resource = state.resources.get(request.match_info["sid"])
    if resource is None:
        return twilio_error(20404, 404, path=request.path)
    return web.json_response(resource)


def _when(value: str) -> date | datetime:
    """A ``DateSent`` filter value: ``YYYY-MM-DD``, ISO 8601 or RFC 2822; ``ValueError`` otherwise."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return date.fromisoformat(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = parsedate_to_datetime(value)  # raises ValueError (TypeError before 3.10) itself
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date_filter(query: Any) -> list[tuple[str, date | datetime]]:
    filters = []
    for key in ("DateSent", "DateSent<", "DateSent>"):
        if value := query.get(key):
            filters.append((key, _when(value)))
    return filters


def _holds(op: str, value: Any, bound: Any) -> bool:
    return bool(value == bound if op == "" else value <= bound if op == "<" else value >= bound)


def _sent_matches(resource: dict[str, Any], filters: list[tuple[str, date | datetime]]) -> bool:
    if not filters:
        return True
    if not resource.get("date_sent"):
        return False
    sent = parsedate_to_datetime(resource["date_sent"])
    return all(
        _holds(
            key[len("DateSent") :],
            sent if isinstance(bound, datetime) else sent.astimezone(UTC).date(),
            bound,
        )
        for key, bound in filters
    )


async def list_messages(request: web.Request) -> web.Response:
    """Twilio's message list: filtered, newest first, paged with Page/PageSize and page URIs."""
    state = request.app[STATE]
    if not authorized(state, request.match_info["account_sid"], request.headers.get("Authorization")):
        return _unauthorized()
    query = request.query
    try:
        filters = _date_filter(query)
        size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
        page = int(query.get("Page", 0))
    except (ValueError, TypeError):
        return twilio_error(20001, 400, path="the list filters")
    if not 1 <= size <= 1000 or page < 0:
        return twilio_error(20001, 400, path="PageSize or Page")
    found = [
        r
        for r in reversed(state.resources.values())
        if (not query.get("To") or r["to"] == query["To"])
        and (not query.get("From") or r["from"] == query["From"])
        and _sent_matches(r, filters)
    ]
    start = page * size
    chosen = found[start : start + size]
    kept = [(k, query[k]) for k in ("To", "From", "DateSent", "DateSent<", "DateSent>") if k in query]

    def page_uri(number: int) -> str:
        token = [("PageToken", f"PA{state.account_sid[2:]}{number}")] if number else []
        return f"{request.path}?{urlencode([*kept, ('PageSize', size), ('Page', number), *token])}"

    return web.json_response(
        {
            "end": start + len(chosen) - 1 if chosen else 0,
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if len(found) > start + size else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": page_uri(page - 1) if page else None,
            "start": start,
            "uri": page_uri(page),
            "messages": chosen,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API_PREFIX}/{{account_sid}}/Messages.json", create_message)
    app.router.add_get(f"{API_PREFIX}/{{account_sid}}/Messages.json", list_messages)
    app.router.add_get(f"{API_PREFIX}/{{account_sid}}/Messages/{{sid}}.json", fetch_message)
