"""Delivery-report webhooks, one per provider, each verified by that provider's scheme.

=========================  ======================================  ==========================
route                      provider                                authenticity
=========================  ======================================  ==========================
/callbacks/twilio/status   Twilio StatusCallback (form)            ``X-Twilio-Signature``
/callbacks/infobip/reports Infobip delivery reports (JSON)         HTTP Basic, shared secret
/callbacks/sendgrid/events SendGrid Event Webhook (JSON array)     Signed Event Webhook (ECDSA)
/callbacks/twilio/inbound  a customer's SMS reply (STOP, 退訂…)      ``X-Twilio-Signature``
=========================  ======================================  ==========================

A forged or unsigned request gets 403 and changes nothing; so does a SendGrid request whose signed
timestamp is more than ``NOTIFIER_SENDGRID_SIGNATURE_MAX_SKEW_S`` from our clock (a replay). A
SendGrid event dated more than ``NOTIFIER_SENDGRID_EVENT_MAX_AGE_S`` ago (or ahead by more than
the skew) is ignored and counted (``expired``). A body that is not what the provider sends (not
UTF-8, not a form, an entry that is not an object, a field of the wrong type) gets 400, and none of
its entries is applied. A verified report about an unknown
or earlier attempt gets 200 (so the provider stops retrying) and changes nothing. If the
database is down the answer is 503, and the provider retries later.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from service.callbacks import DeliveryReports
from service.domain.errors import StoreUnavailable
from service.domain.phone import normalize_hk_mobile
from service.http.server import BadBody, read_form, read_json
from service.logs import get_logger
from service.providers.sendgrid import verify_sendgrid_signature
from service.providers.twilio import verify_twilio_signature
from service.settings import Settings

log = get_logger(__name__)

_TWILIO_DELIVERED = {"delivered"}
_TWILIO_UNDELIVERED = {"undelivered", "failed"}
_INFOBIP_UNDELIVERED = {"UNDELIVERABLE", "EXPIRED", "REJECTED"}
_SENDGRID_UNDELIVERED = {"bounce", "dropped"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _forbidden(provider: str, why: str) -> web.Response:
    log.warning("callback_rejected", provider=provider, why=why)
    return web.json_response({"error": "forbidden"}, status=403)


def _basic_auth_ok(header: str | None, user: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True)
    except binascii.Error:
        return False
    return hmac.compare_digest(given, f"{user}:{password}".encode())


_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_REFERENCE_MAX = 200


def _code(value: object) -> str | None:
    """A provider's status or error code as it may appear in a receipt's reason: a short word."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadBody("a code is not a string")
    text = str(value)
    return text if _CODE.fullmatch(text) else "other"


def _reference(*values: object) -> str:
    for value in values:
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > _REFERENCE_MAX:
            raise BadBody("a reference is not a short string")
        return value
    return ""


def _object(entry: dict[str, object], key: str) -> dict[str, object]:
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadBody(f"{key} is not an object")
    return value


def _infobip_report(r: object) -> tuple[str, str, str | None]:
    """(status group, reference, code) of one Infobip delivery report; ``BadBody`` if malformed."""
    if not isinstance(r, dict):
        raise BadBody("a report is not an object")
    status, error = _object(r, "status"), _object(r, "error")
    group = status.get("groupName", "")
    if not isinstance(group, str):
        raise BadBody("groupName is not a string")
    return (
        group,
        _reference(r.get("callbackData"), r.get("messageId")),
        _code(error.get("name")) or _code(status.get("name")),
    )


def _sendgrid_event(e: object) -> tuple[str, str, str | None, float]:
    """(event, reference, code, timestamp) of one SendGrid event; ``BadBody`` if malformed."""
    if not isinstance(e, dict):
        raise BadBody("an event is not an object")
    kind, at = e.get("event", ""), e.get("timestamp")
    if not isinstance(kind, str):
        raise BadBody("event is not a string")
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise BadBody("timestamp is not a number")
    return kind, _reference(e.get("ref")), _code(e.get("type")) or _code(kind), float(at)


def _fresh(stamp: str | float, now: float, *, past_s: float, future_s: float) -> bool:
    """Whether a Unix time (a number, or its decimal text) lies within [now - past, now + future]."""
    try:
        at = float(stamp)
    except ValueError:
        return False
    return now - past_s <= at <= now + future_s


_STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退訂", "取消", "停止"}
_START_WORDS = {"START", "UNSTOP", "訂閱"}


def consent_word(body: str) -> bool | None:
    """True for an opt-out keyword (STOP, 退訂 …), False for an opt-in (START …), None otherwise."""
    word = body.strip().upper().rstrip(".!。！")
    if word in _STOP_WORDS:
        return True
    if word in _START_WORDS:
        return False
    return None


def add_callback_routes(  # noqa: PLR0915  # one small handler per provider webhook
    app: web.Application,
    settings: Settings,
    reports: DeliveryReports,
    consent: Callable[[str, bool, str], Awaitable[int]],
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """``consent(phone_e164, opted_out, source)`` records a customer's STOP / START reply."""
    base = (settings.callback_base_url or "").rstrip("/")
    twilio_token = settings.twilio_auth_token.get_secret_value()
    infobip_user = settings.infobip_webhook_user
    infobip_password = settings.infobip_webhook_password.get_secret_value()
    sendgrid_key = settings.sendgrid_webhook_public_key
    max_skew_s = settings.sendgrid_signature_max_skew_s
    max_event_age_s = settings.sendgrid_event_max_age_s

    def forbidden(provider: str, why: str) -> web.Response:
        reports.rejected(provider)
        return _forbidden(provider, why)

    def store_errors(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except StoreUnavailable:
                return web.json_response({"error": "try again later"}, status=503)

        return wrapped

    @store_errors
    async def twilio_status(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        signature = request.headers.get("X-Twilio-Signature", "")
        url = f"{base}{request.path_qs}"
        if not signature or not verify_twilio_signature(twilio_token, url, form, signature):
            return forbidden("twilio", "bad signature")
        status = form.get("MessageStatus", "")
        reference = request.query.get("ref", "")
        if status in _TWILIO_DELIVERED | _TWILIO_UNDELIVERED:
            await reports.report(
                "twilio", reference, delivered=status in _TWILIO_DELIVERED, code=_code(form.get("ErrorCode"))
            )
        return web.Response(status=204)

    @store_errors
    async def infobip_reports(request: web.Request) -> web.StreamResponse:
        if not _basic_auth_ok(request.headers.get("Authorization"), infobip_user, infobip_password):
            return forbidden("infobip", "bad credentials")
        body = await read_json(request)
        results = body.get("results", []) if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise BadBody("results is not a list")
        parsed = [_infobip_report(r) for r in results]  # all checked before any is applied
        for group, reference, code in parsed:
            if group == "DELIVERED" or group in _INFOBIP_UNDELIVERED:
                await reports.report("infobip", reference, delivered=group == "DELIVERED", code=code)
        return web.Response(status=204)

    @store_errors
    async def sendgrid_events(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        now = clock()
        if not (sendgrid_key and signature and timestamp) or not verify_sendgrid_signature(
            sendgrid_key, body, signature, timestamp
        ):
            return forbidden("sendgrid", "bad signature")
        if not _fresh(timestamp, now, past_s=max_skew_s, future_s=max_skew_s):
            return forbidden("sendgrid", "stale signature")  # a replay of a request once signed
        try:
            events = json.loads(body.decode("utf-8"))
        except (UnicodeError, ValueError, RecursionError):
            raise BadBody("unreadable JSON") from None
        if not isinstance(events, list):
            raise BadBody("not a list of events")
        parsed = [_sendgrid_event(e) for e in events]  # all checked before any is applied
        for kind, reference, code, at in parsed:
            if not (kind == "delivered" or kind in _SENDGRID_UNDELIVERED):
                continue
            if not _fresh(at, now, past_s=max_event_age_s, future_s=max_skew_s):
                reports.expired("sendgrid")
                continue
            await reports.report("sendgrid", reference, delivered=kind == "delivered", code=code)
        return web.Response(status=204)

    @store_errors
    async def twilio_inbound(request: web.Request) -> web.StreamResponse:
        """A customer's reply (Twilio's inbound-message webhook): STOP / 退訂 opts out, START opts in."""
        form = await read_form(request)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not verify_twilio_signature(
            twilio_token, f"{base}{request.path_qs}", form, signature
        ):
            return forbidden("twilio", "bad signature")
        wants_out = consent_word(form.get("Body", ""))
        phone = normalize_hk_mobile(form.get("From", ""), allow_foreign_mobiles=True).e164
        if wants_out is not None and phone:
            await consent(phone, wants_out, "sms_reply:twilio")
            log.info("consent_reply", opted_out=wants_out, source="sms_reply:twilio")
        # An empty TwiML response: Twilio sends no reply of its own.
        return web.Response(text="<Response/>", content_type="text/xml")

    app.router.add_post("/callbacks/twilio/status", twilio_status)
    app.router.add_post("/callbacks/twilio/inbound", twilio_inbound)
    app.router.add_post("/callbacks/infobip/reports", infobip_reports)
    app.router.add_post("/callbacks/sendgrid/events", sendgrid_events)
