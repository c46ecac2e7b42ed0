"""SendGrid's v3 Mail Send API (``Authorization: Bearer <api key>``) and its Signed Event Webhook:

    POST /v3/mail/send                           202, empty body, ``X-Message-Id``; or 4xx/5xx with
                                                 ``{"errors": [{"message", "field"}]}``
    GET  /v3/user/webhooks/event/settings/signed the webhook's public key (as SendGrid serves it)

Requests are checked as SendGrid checks them (personalizations with ``to`` addresses, ``from``,
``subject``, ``content`` in text/plain, text/html order) and every problem is listed at once.
When ``state.sendgrid_event_webhook_url`` is set, each recipient gets a ``processed`` event and
then ``delivered`` (or ``bounce`` at the fault's ``undelivered_rate``), with the personalization's
custom_args flattened in, posted as JSON arrays signed with the sandbox's ECDSA P-256 key.
A fault's ``error_code`` is an HTTP status.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from typing import Any, Final

from aiohttp import web

from service.sandbox.core import STATE, SandboxState
from service.sandbox.faults import is_int

PROVIDER: Final = "sendgrid"
EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: Event fields a custom arg may not overwrite.
RESERVED: Final = frozenset(
    {"email", "timestamp", "event", "sg_event_id", "sg_message_id", "smtp-id", "category", "type", "reason"}
)
STATUS_MESSAGES: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    404: "not found",
    413: "Payload Too Large",
    429: "too many requests",
}
#: A bounce's (type, status, reason, bounce_classification), chosen at random.
BOUNCES: Final = (
    (
        "bounce",
        "5.1.1",
        "550 5.1.1 The email account that you tried to reach does not exist.",
        "Invalid Address",
    ),
    ("blocked", "5.7.1", "550 5.7.1 Message rejected due to local policy.", "Reputation"),
)
MSG_FROM: Final = (
    "The from object must be provided for every email send. It is an object that requires the email "
    'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
    '{"email" : "example@example.com", "name" : "Example Recipient"}.'
)
MSG_TO: Final = (
    "The to array is required for all personalization objects, and must have at least one email object "
    "with a valid email address."
)
MSG_CONTENT: Final = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at least one "
    "defined content block. We typically suggest both text/plain and text/html blocks are included, but "
    "only one block is required."
)
MSG_SUBJECT: Final = (
    "The subject is required. You can get around this requirement if you use a template with a subject "
    "defined or if every personalization has a subject defined."
)


def valid_error_code(code: Any) -> bool:
    return is_int(code) and 100 <= code < 600


def errors_response(errors: list[tuple[str | None, str]], status: int, **headers: str) -> web.Response:
    body = {"errors": [{"message": message, "field": field} for field, message in errors]}
    return web.json_response(body, status=status, headers=headers or None)


def status_error(status: int, **headers: str) -> web.Response:
    message = STATUS_MESSAGES.get(status, "internal server error" if status >= 500 else "Bad Request")
    return errors_response([(None, message)], status, **headers)


def _authorized(state: SandboxState, header: str | None) -> bool:
    scheme, _, key = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(key.encode(), state.sendgrid_api_key.encode())


def _address_errors(value: Any, field: str, missing: str, invalid: str) -> list[tuple[str | None, str]]:
    if not isinstance(value, dict) or not isinstance(value.get("email"), str):
        return [(field, missing)]
    return [] if EMAIL.fullmatch(value["email"]) else [(field, invalid)]


def validate(mail: Any) -> list[tuple[str | None, str]]:
    """SendGrid's (field, message) errors for a mail/send request; empty when it is acceptable."""
    if not isinstance(mail, dict):
        return [(None, "Bad Request")]
    errors: list[tuple[str | None, str]] = []
    people = mail.get("personalizations")
    if not isinstance(people, list) or not 1 <= len(people) <= 1000:
        errors.append(
            (
                "personalizations",
                "The personalizations field is required and must have at least one personalization.",
            )
        )
        people = []
    for i, person in enumerate(people):
        to = person.get("to") if isinstance(person, dict) else None
        if not isinstance(to, list) or not to:
            errors.append((f"personalizations.{i}.to", MSG_TO))
            continue
        for j, address in enumerate(to):
            field = f"personalizations.{i}.to.{j}.email"
            errors += _address_errors(address, field, MSG_TO, "Does not contain a valid address.")
        args = person.get("custom_args", {})
        if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
            errors.append((f"personalizations.{i}.custom_args", "custom_args values must be strings."))
    errors += _address_errors(
        mail.get("from"), "from.email", MSG_FROM, "The from email does not contain a valid address."
    )
    has_subjects = bool(people) and all(isinstance(p, dict) and p.get("subject") for p in people)
    if not (isinstance(mail.get("subject"), str) and mail["subject"]) and not has_subjects:
        errors.append(("subject", MSG_SUBJECT))
    errors += _content_errors(mail.get("content"))
    return errors


def _content_errors(content: Any) -> list[tuple[str | None, str]]:
    if not isinstance(content, list) or not content:
        return [("content", MSG_CONTENT)]
    errors: list[tuple[str | None, str]] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str) or not part["type"]:
            errors.append(
                (f"content.{i}.type", "The content type must be a string at least one character in length.")
            )
        elif not isinstance(part.get("value"), str) or not part["value"]:
            errors.append(
                (f"content.{i}.value", "The content value must be a string at least one character in length.")
            )
    kinds = [p.get("type") for p in content if isinstance(p, dict)]
    order = {"text/plain": 0, "text/html": 1}
    ranks = [order.get(str(k), 2) for k in kinds]
    if ranks != sorted(ranks):
        errors.append(
            (
                "content",
                "If present, text/plain content must be first, followed by text/html, followed by any other content.",
            )
        )
    return errors


async def mail_send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not _authorized(state, request.headers.get("Authorization")):
        return status_error(401)
    fault = await state.admit(PROVIDER)
    try:
        mail = await request.json()
    except ValueError:
        return status_error(400)
    if fault:
        status = int(fault.error_code)
        if status == 429:
            reset = int(state.now().timestamp()) + (fault.retry_after or 1)
            limits = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
            return status_error(429, **limits)
        return status_error(status)
    if errors := validate(mail):
        return errors_response(errors, 400)
    message_id = state.new_id()[:22]
    _accept(state, mail, message_id)
    return web.Response(status=202, headers={"X-Message-Id": message_id})


def _accept(state: SandboxState, mail: dict[str, Any], message_id: str) -> None:
    content = {part["type"]: part["value"] for part in mail["content"]}
    text = content.get("text/plain") or next(iter(content.values()))
    sender = mail["from"]["email"]
    recipients: list[tuple[str, dict[str, str]]] = []
    shared = mail.get("custom_args")
    shared_args = {k: v for k, v in shared.items() if isinstance(v, str)} if isinstance(shared, dict) else {}
    for person in mail["personalizations"]:
        # Message-wide custom_args (where the official SDK puts them), then the personalization's.
        args: dict[str, str] = {**shared_args, **(person.get("custom_args") or {})}
        for address in person["to"]:
            subject = person.get("subject") or mail.get("subject")
            state.record(
                PROVIDER,
                message_id,
                address["email"],
                sender,
                text,
                reference=args.get("ref"),
                subject=subject,
            )
            recipients.append((address["email"], args))
    if state.sendgrid_event_webhook_url:
        bounces = [state.rng.choice(BOUNCES) if state.undelivered(PROVIDER) else None for _ in recipients]
        url = state.sendgrid_event_webhook_url
        state.callbacks.spawn(PROVIDER, _events(state, url, message_id, recipients, bounces))


def _event(
    state: SandboxState, *, kind: str, email: str, args: dict[str, str], message_id: str, index: int
) -> dict[str, Any]:
    stamp = int(state.now().timestamp())
    event: dict[str, Any] = {k: v for k, v in args.items() if k not in RESERVED}
    event.update(
        {
            "email": email,
            "timestamp": stamp,
            "smtp-id": f"<{message_id}@sandbox.sendgrid.net>",
            "event": kind,
            "category": [],
            "sg_event_id": state.new_id()[:22],
            "sg_message_id": f"{message_id}.filterdrecv-sandbox-1-{stamp:x}-{index}",
        }
    )
    return event


async def _events(
    state: SandboxState,
    url: str,
    message_id: str,
    recipients: list[tuple[str, dict[str, str]]],
    bounces: list[tuple[str, str, str, str] | None],
) -> None:
    """``processed`` for every recipient, then ``delivered`` or ``bounce``: two signed posts."""

    async def post(batch: list[dict[str, Any]]) -> None:
        if delay := state.callback_delay_s(PROVIDER):
            await asyncio.sleep(delay)
        body = json.dumps(batch).encode()
        headers = state.sendgrid_signer.headers(body, str(int(state.now().timestamp())))
        headers["Content-Type"] = "application/json"
        await state.callbacks.post(PROVIDER, url, body, headers)

    await post(
        [
            _event(state, kind="processed", email=email, args=args, message_id=message_id, index=i)
            for i, (email, args) in enumerate(recipients)
        ]
    )
    outcomes = []
    for i, ((email, args), bounce) in enumerate(zip(recipients, bounces, strict=True)):
        event = _event(
            state,
            kind="bounce" if bounce else "delivered",
            email=email,
            args=args,
            message_id=message_id,
            index=i,
        )
        if bounce:
            event.update(zip(("type", "status", "reason", "bounce_classification"), bounce, strict=True))
        else:
            event.update({"response": "250 OK", "ip": "127.0.0.1", "tls": 1})
        outcomes.append(event)
    await post(outcomes)


async def signed_webhook_settings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not _authorized(state, request.headers.get("Authorization")):
        return status_error(401)
    return web.json_response({"enabled": True, "public_key": state.sendgrid_signer.public_key_b64})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v3/mail/send", mail_send)
    app.router.add_get("/v3/user/webhooks/event/settings/signed", signed_webhook_settings)
