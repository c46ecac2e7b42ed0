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

Each provider's verification and parsing (its status vocabulary, what a malformed body is) live
next to its client in ``service.send.providers``; a route here only verifies, parses and routes the
result to ``DeliveryReports`` (or the consent store).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from service.domain.errors import MalformedReport, StoreUnavailable
from service.domain.report import DeliveryReport
from service.http.server import BadBody, read_form
from service.logs import get_logger
from service.report.delivery_reports import DeliveryReports
from service.send.providers import infobip, sendgrid, twilio
from service.settings import Settings

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _forbidden(provider: str, why: str) -> web.Response:
    log.warning("callback_rejected", provider=provider, why=why)
    return web.json_response({"error": "forbidden"}, status=403)


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

    def answered(handler: Handler) -> Handler:
        """A malformed body is answered 400 (by the middleware), the database down 503."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except MalformedReport as exc:
                raise BadBody(str(exc)) from None
            except StoreUnavailable:
                return web.json_response({"error": "try again later"}, status=503)

        return wrapped

    async def apply(parsed: Sequence[DeliveryReport]) -> web.StreamResponse:
        for report in parsed:
            if report.expired:
                reports.expired(report.provider)
            else:
                await reports.report(
                    report.provider, report.reference, delivered=report.delivered, code=report.code
                )
        return web.Response(status=204)

    def twilio_signed(request: web.Request, form: dict[str, str]) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        url = f"{base}{request.path_qs}"
        return bool(signature) and twilio.verify_twilio_signature(twilio_token, url, form, signature)

    @answered
    async def twilio_status(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        if not twilio_signed(request, form):
            return forbidden("twilio", "bad signature")
        report = twilio.parse_status_callback(form, request.query)
        return await apply([report] if report is not None else [])

    @answered
    async def infobip_reports(request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        if not infobip.verify_webhook_credentials(authorization, infobip_user, infobip_password):
            return forbidden("infobip", "bad credentials")
        return await apply(infobip.parse_reports(await request.read()))

    @answered
    async def sendgrid_events(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signature = request.headers.get(sendgrid.SIGNATURE_HEADER, "")
        timestamp = request.headers.get(sendgrid.TIMESTAMP_HEADER, "")
        now = clock()
        if not (sendgrid_key and signature and timestamp) or not sendgrid.verify_sendgrid_signature(
            sendgrid_key, body, signature, timestamp
        ):
            return forbidden("sendgrid", "bad signature")
        if not sendgrid.fresh(timestamp, now, past_s=max_skew_s, future_s=max_skew_s):
            return forbidden("sendgrid", "stale signature")  # a replay of a request once signed
        return await apply(sendgrid.parse_events(body, now, max_age_s=max_event_age_s, max_skew_s=max_skew_s))

    @answered
    async def twilio_inbound(request: web.Request) -> web.StreamResponse:
        """A customer's reply (Twilio's inbound-message webhook): STOP / 退訂 opts out, START opts in."""
        form = await read_form(request)
        if not twilio_signed(request, form):
            return forbidden("twilio", "bad signature")
        if (reply := twilio.parse_inbound_message(form)) is not None:
            await consent(reply.phone_e164, reply.opted_out, reply.source)
            log.info("consent_reply", opted_out=reply.opted_out, source=reply.source)
        # An empty TwiML response: Twilio sends no reply of its own.
        return web.Response(text="<Response/>", content_type="text/xml")

    app.router.add_post("/callbacks/twilio/status", twilio_status)
    app.router.add_post("/callbacks/twilio/inbound", twilio_inbound)
    app.router.add_post("/callbacks/infobip/reports", infobip_reports)
    app.router.add_post("/callbacks/sendgrid/events", sendgrid_events)
