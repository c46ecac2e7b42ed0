"""Delivery-report webhooks, one per provider, each verified by that provider's scheme.

=========================  ======================================  ==========================
route                      provider                                authenticity
=========================  ======================================  ==========================
/callbacks/twilio/status   Twilio StatusCallback (form)            ``X-Twilio-Signature``
/callbacks/infobip/reports Infobip delivery reports (JSON)         HTTP Basic, shared secret
/callbacks/sendgrid/events SendGrid Event Webhook (JSON array)     Signed Event Webhook (ECDSA)
/callbacks/twilio/inbound  a customer's SMS reply (STOP, 退訂…)      ``X-Twilio-Signature``
=========================  ======================================  ==========================

A forged or unsigned request gets 403 and changes nothing. A verified report about an unknown
or earlier attempt gets 200 (so the provider stops retrying) and changes nothing. If the
database is down the answer is 503, and the provider retries later.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from service.callbacks import DeliveryReports
from service.domain.errors import StoreUnavailable
from service.domain.phone import normalize_hk_mobile
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
) -> None:
    """``consent(phone_e164, opted_out, source)`` records a customer's STOP / START reply."""
    base = (settings.callback_base_url or "").rstrip("/")
    twilio_token = settings.twilio_auth_token.get_secret_value()
    infobip_user = settings.infobip_webhook_user
    infobip_password = settings.infobip_webhook_password.get_secret_value()
    sendgrid_key = settings.sendgrid_webhook_public_key

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
        form = {k: str(v) for k, v in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        url = f"{base}{request.path_qs}"
        if not signature or not verify_twilio_signature(twilio_token, url, form, signature):
            return forbidden("twilio", "bad signature")
        status = form.get("MessageStatus", "")
        reference = request.query.get("ref", "")
        if status in _TWILIO_DELIVERED | _TWILIO_UNDELIVERED:
            await reports.report(
                "twilio", reference, delivered=status in _TWILIO_DELIVERED, code=form.get("ErrorCode") or None
            )
        return web.Response(status=204)

    @store_errors
    async def infobip_reports(request: web.Request) -> web.StreamResponse:
        if not _basic_auth_ok(request.headers.get("Authorization"), infobip_user, infobip_password):
            return forbidden("infobip", "bad credentials")
        try:
            results = (await request.json()).get("results", [])
        except (json.JSONDecodeError, AttributeError):
            return web.json_response({"error": "bad request"}, status=400)
        for r in results if isinstance(results, list) else []:
            group = str((r.get("status") or {}).get("groupName", ""))
            reference = str(r.get("callbackData") or r.get("messageId") or "")
            if group == "DELIVERED" or group in _INFOBIP_UNDELIVERED:
                code = (r.get("error") or {}).get("name") or (r.get("status") or {}).get("name")
                await reports.report("infobip", reference, delivered=group == "DELIVERED", code=code)
        return web.Response(status=204)

    @store_errors
    async def sendgrid_events(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        if not (sendgrid_key and signature and timestamp) or not verify_sendgrid_signature(
            sendgrid_key, body, signature, timestamp
        ):
            return forbidden("sendgrid", "bad signature")
        try:
            events = json.loads(body)
        except json.JSONDecodeError:
            return web.json_response({"error": "bad request"}, status=400)
        for e in events if isinstance(events, list) else []:
            kind = str(e.get("event", ""))
            if kind == "delivered" or kind in _SENDGRID_UNDELIVERED:
                await reports.report(
                    "sendgrid",
                    str(e.get("ref", "")),
                    delivered=kind == "delivered",
                    code=e.get("type") or kind,
                )
        return web.Response(status=204)

    @store_errors
    async def twilio_inbound(request: web.Request) -> web.StreamResponse:
        """A customer's reply (Twilio's inbound-message webhook): STOP / 退訂 opts out, START opts in."""
        form = {k: str(v) for k, v in (await request.post()).items()}
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
