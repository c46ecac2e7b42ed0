"""Infobip's SMS API (``Authorization: App <api key>``), in its v2 form and the v3 form the official SDK uses:

    POST /sms/2/text/advanced   {"messages": [{"destinations": [{"to", "messageId"}], "from", "text",
                                 "notifyUrl", "notifyContentType", "callbackData"}, ...]}
    POST /sms/3/messages        {"messages": [{"sender", "destinations", "content": {"text"},
                                 "webhooks": {"delivery": {"url"}, "callbackData"}}, ...]}
    GET  /sms/1/logs, /sms/3/logs   ?messageId=...&bulkId=...&limit=...

Each destination gets a status: PENDING_ACCEPTED, or a REJECTED one (MISSING_TO, REJECTED_DESTINATION,
REJECTED_DUPLICATE_MESSAGE_ID...). A message with a notify URL later gets a delivery report
(DELIVERED_TO_HANDSET, or UNDELIVERABLE_NOT_DELIVERED at the fault's ``undelivered_rate``),
posted with HTTP basic auth (the configured webhook user and password); every message reaches
that status in the logs, with a notify URL or without. Refused requests are
answered with ``requestError.serviceException`` (v1/v2) or an ``ApiError`` (v3). A fault's
``error_code`` is an HTTP status or a REJECTED status name, which then applies to every message.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from datetime import datetime
from typing import Any, Final

import aiohttp
from aiohttp import web

from service.sandbox.core import STATE, SandboxState, count_segments
from service.sandbox.faults import Fault, is_int

PROVIDER: Final = "infobip"
NUMBER: Final = re.compile(r"\+?[1-9]\d{6,14}")

#: Status name -> (groupId, groupName, id, description), from Infobip's status code reference.
STATUSES: Final[dict[str, tuple[int, str, int, str]]] = {
    "PENDING_ACCEPTED": (1, "PENDING", 26, "Message sent to next instance"),
    "DELIVERED_TO_HANDSET": (3, "DELIVERED", 5, "Message delivered to handset"),
    "UNDELIVERABLE_NOT_DELIVERED": (2, "UNDELIVERABLE", 9, "Message sent not delivered"),
    "REJECTED_NETWORK": (5, "REJECTED", 6, "Network is forbidden"),
    "REJECTED_PREFIX_MISSING": (5, "REJECTED", 8, "Number prefix missing"),
    "REJECTED_DND": (5, "REJECTED", 10, "Destination on DND list"),
    "REJECTED_SOURCE": (5, "REJECTED", 11, "Invalid Source address"),
    "REJECTED_NOT_ENOUGH_CREDITS": (5, "REJECTED", 12, "Not enough credits"),
    "REJECTED_SENDER": (5, "REJECTED", 13, "Sender blocklisted"),
    "REJECTED_DESTINATION_BLOCKLISTED": (5, "REJECTED", 14, "Destination blocklisted"),
    "REJECTED_PREPAID_PACKAGE_EXPIRED": (5, "REJECTED", 17, "Prepaid package expired"),
    "REJECTED_DESTINATION_NOT_REGISTERED": (5, "REJECTED", 18, "Destination not registered"),
    "REJECTED_ROUTE_NOT_AVAILABLE": (5, "REJECTED", 19, "Route not available"),
    "REJECTED_FLOODING_FILTER": (5, "REJECTED", 20, "Rejected flooding"),
    "REJECTED_SYSTEM_ERROR": (5, "REJECTED", 21, "System error"),
    "REJECTED_DUPLICATE_MESSAGE_ID": (5, "REJECTED", 23, "Rejected duplicate message ID"),
    "REJECTED_INVALID_UDH": (5, "REJECTED", 24, "Invalid UDH"),
    "REJECTED_MESSAGE_TOO_LONG": (5, "REJECTED", 25, "Message too long"),
    "MISSING_TO": (5, "REJECTED", 51, "Missing to"),
    "REJECTED_DESTINATION": (5, "REJECTED", 52, "Invalid destination address"),
    "SIGNALS_BLOCKED": (5, "REJECTED", 87, "Signals blocked"),
}
REJECTED: Final = frozenset(name for name, (group, *_) in STATUSES.items() if group == 5)
#: Error name -> (groupId, groupName, id, description, permanent).
ERRORS: Final[dict[str, tuple[int, str, int, str, bool]]] = {
    "NO_ERROR": (0, "OK", 0, "No Error", False),
    "EC_UNKNOWN_SUBSCRIBER": (1, "HANDSET_ERRORS", 1, "Unknown Subscriber", True),
    "EC_ABSENT_SUBSCRIBER": (1, "HANDSET_ERRORS", 27, "Absent Subscriber", False),
}
UNDELIVERED_ERRORS: Final = ("EC_ABSENT_SUBSCRIBER", "EC_UNKNOWN_SUBSCRIBER")
#: HTTP status -> (serviceException.messageId, text) of a refused request.
REQUEST_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("BAD_REQUEST", "Bad request"),
    401: ("UNAUTHORIZED", "Invalid login details"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not found"),
    429: ("TOO_MANY_REQUESTS", "Too many requests"),
}
SERVER_ERROR: Final = ("GENERAL_ERROR", "Something went wrong. Please contact support.")


def valid_error_code(code: Any) -> bool:
    return (is_int(code) and 100 <= code < 600) or code in REJECTED


def status_object(name: str) -> dict[str, Any]:
    group_id, group_name, status_id, description = STATUSES[name]
    return {
        "groupId": group_id,
        "groupName": group_name,
        "id": status_id,
        "name": name,
        "description": description,
    }


def error_object(name: str) -> dict[str, Any]:
    group_id, group_name, error_id, description, permanent = ERRORS[name]
    return {
        "groupId": group_id,
        "groupName": group_name,
        "id": error_id,
        "name": name,
        "description": description,
        "permanent": permanent,
    }


def infobip_time(moment: datetime) -> str:
    """Infobip's timestamp format: ``2025-03-04T05:06:07.000+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def request_error(status: int, *, v3: bool, headers: dict[str, str] | None = None) -> web.Response:
    word, text = REQUEST_ERRORS.get(status, SERVER_ERROR if status >= 500 else REQUEST_ERRORS[400])
    if v3:
        body: dict[str, Any] = {
            "errorCode": f"E{status}",
            "description": text,
            "action": "Check the request and try again.",
            "violations": [],
            "resources": [],
        }
    else:
        body = {"requestError": {"serviceException": {"messageId": word, "text": text}}}
    return web.json_response(body, status=status, headers=headers)


def _authorized(state: SandboxState, header: str | None) -> bool:
    scheme, _, key = (header or "").partition(" ")
    return scheme.lower() == "app" and hmac.compare_digest(key.encode(), state.infobip_api_key.encode())


def _normalized(message: Any, v3: bool) -> dict[str, Any] | None:
    """One message's sender, text, destinations, notify URL and callback data (v2 or v3), or None if malformed."""
    if not isinstance(message, dict) or not isinstance(message.get("destinations"), list):
        return None
    if v3:
        content, hooks = message.get("content"), message.get("webhooks") or {}
        text = content.get("text") if isinstance(content, dict) else None
        delivery = hooks.get("delivery") if isinstance(hooks, dict) else None
        notify = delivery.get("url") if isinstance(delivery, dict) else None
        sender, callback_data = (
            message.get("sender"),
            hooks.get("callbackData") if isinstance(hooks, dict) else None,
        )
    else:
        text, notify = message.get("text"), message.get("notifyUrl")
        sender, callback_data = message.get("from"), message.get("callbackData")
    if not isinstance(text, str) or not message["destinations"]:
        return None
    if not all(isinstance(d, dict) for d in message["destinations"]):
        return None
    return {
        "sender": sender if isinstance(sender, str) else "InfoSMS",
        "text": text,
        "destinations": message["destinations"],
        "notify": notify if isinstance(notify, str) and notify else None,
        "callback_data": callback_data if isinstance(callback_data, str) else None,
    }


async def send(request: web.Request) -> web.Response:
    v3 = request.path.startswith("/sms/3/")
    state = request.app[STATE]
    if not _authorized(state, request.headers.get("Authorization")):
        return request_error(401, v3=v3)
    fault = await state.admit(PROVIDER)
    try:
        document = await request.json()
    except ValueError:
        return request_error(400, v3=v3)
    raw = document.get("messages") if isinstance(document, dict) else None
    parsed = [_normalized(m, v3) for m in raw] if isinstance(raw, list) else []
    messages = [m for m in parsed if m is not None]
    if not messages or len(messages) != len(parsed):
        return request_error(400, v3=v3)
    if fault and is_int(fault.error_code):
        status = int(fault.error_code)
        headers = {"Retry-After": str(fault.retry_after or 1)} if status == 429 else None
        return request_error(status, v3=v3, headers=headers)
    bulk_id, answered = state.new_id(), []
    for message in messages:
        for destination in message["destinations"]:
            answered.append(_destination(state, bulk_id, message, destination, fault, v3=v3))
    return web.json_response({"bulkId": bulk_id, "messages": answered})


def _destination(
    state: SandboxState,
    bulk_id: str,
    message: dict[str, Any],
    destination: dict[str, Any],
    fault: Fault | None,
    *,
    v3: bool,
) -> dict[str, Any]:
    """Accept or reject one destination; its entry in the send response."""
    to = destination.get("to") if isinstance(destination.get("to"), str) else ""
    given_id = destination.get("messageId")
    message_id = given_id if isinstance(given_id, str) and given_id else state.new_id()
    if fault is not None:
        status = str(fault.error_code)
    elif not to:
        status = "MISSING_TO"
    elif not NUMBER.fullmatch(to):
        status = "REJECTED_DESTINATION"
    elif message_id in state.infobip_logs:
        status = "REJECTED_DUPLICATE_MESSAGE_ID"
    else:
        status = "PENDING_ACCEPTED"
        _accept(state, bulk_id, message_id, to.removeprefix("+"), message, v3=v3)
    entry: dict[str, Any] = {"messageId": message_id, "status": status_object(status)}
    if v3:
        entry["destination"] = to
        entry["details"] = {"messageCount": count_segments(message["text"])}
    else:
        entry["to"] = to
    return entry


def _accept(
    state: SandboxState, bulk_id: str, message_id: str, to: str, message: dict[str, Any], *, v3: bool
) -> None:
    now = state.now()
    log = {
        "bulkId": bulk_id,
        "messageId": message_id,
        "to": to,
        "from": message["sender"],
        "text": message["text"],
        "sentAt": infobip_time(now),
        "doneAt": infobip_time(now),
        "smsCount": count_segments(message["text"]),
        "mccMnc": "45400",
        "price": {"pricePerMessage": 0.0, "currency": "EUR"},
        "status": status_object("PENDING_ACCEPTED"),
        "error": error_object("NO_ERROR"),
        "callbackData": message["callback_data"],
    }
    state.infobip_logs[message_id] = log
    state.record(
        PROVIDER, message_id, f"+{to}", message["sender"], message["text"], reference=message_id, at=now
    )
    # The message reaches its final status (what the logs show) whether or not a report is posted.
    error = state.rng.choice(UNDELIVERED_ERRORS) if state.undelivered(PROVIDER) else None
    state.callbacks.spawn(PROVIDER, _delivery_report(state, log, message["notify"], error, v3=v3))


async def _delivery_report(
    state: SandboxState, log: dict[str, Any], url: str | None, error: str | None, *, v3: bool
) -> None:
    if delay := state.callback_delay_s(PROVIDER):
        await asyncio.sleep(delay)
    log["status"] = status_object("UNDELIVERABLE_NOT_DELIVERED" if error else "DELIVERED_TO_HANDSET")
    log["error"] = error_object(error or "NO_ERROR")
    log["doneAt"] = infobip_time(state.now())
    if url is None:
        return
    report = {
        k: log[k]
        for k in ("bulkId", "messageId", "to", "sentAt", "doneAt", "mccMnc", "price", "status", "error")
    }
    report["callbackData"] = log["callbackData"]
    if v3:
        report["sender"], report["messageCount"] = log["from"], log["smsCount"]
    else:
        report["smsCount"] = log["smsCount"]
    headers = {
        "Content-Type": "application/json",
        "Authorization": aiohttp.encode_basic_auth(
            state.infobip_webhook_user, state.infobip_webhook_password
        ),
    }
    await state.callbacks.post(PROVIDER, url, json.dumps({"results": [report]}).encode(), headers)


async def logs(request: web.Request) -> web.Response:
    """Sent messages, newest first, filtered by messageId, bulkId and to/destination."""
    v3 = request.path.startswith("/sms/3/")
    state = request.app[STATE]
    if not _authorized(state, request.headers.get("Authorization")):
        return request_error(401, v3=v3)
    query = request.query
    wanted_ids = set(query.getall("messageId", []))
    to = query.get("destination" if v3 else "to", "").removeprefix("+")
    try:
        limit = int(query.get("limit", 50))
    except ValueError:
        return request_error(400, v3=v3)
    found = [
        log
        for log in reversed(state.infobip_logs.values())
        if (not wanted_ids or log["messageId"] in wanted_ids)
        and (not query.get("bulkId") or log["bulkId"] == query["bulkId"])
        and (not to or log["to"] == to)
    ][: max(0, min(limit, 1000))]
    return web.json_response({"results": [_log_v3(log) if v3 else _log_v1(log) for log in found]})


def _log_v1(log: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in log.items() if k != "callbackData"}


def _log_v3(log: dict[str, Any]) -> dict[str, Any]:
    return {
        "sender": log["from"],
        "destination": log["to"],
        "bulkId": log["bulkId"],
        "messageId": log["messageId"],
        "sentAt": log["sentAt"],
        "doneAt": log["doneAt"],
        "messageCount": log["smsCount"],
        "price": log["price"],
        "status": log["status"],
        "error": log["error"],
        "content": {"text": log["text"]},
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sms/2/text/advanced", send)
    app.router.add_post("/sms/3/messages", send)
    app.router.add_get("/sms/1/logs", logs)
    app.router.add_get("/sms/3/logs", logs)
