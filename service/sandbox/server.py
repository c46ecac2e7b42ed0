"""A sandbox that speaks Twilio's Messages API, faithfully enough for the official SDK.

Twilio API (``/2010-04-01``, HTTP basic auth with the configured account SID and token):

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json       form: To, From | MessagingServiceSid, Body
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json

Control endpoints for tests and demos (not Twilio's, no auth):

    GET    /sandbox/messages          every accepted message, in order
    DELETE /sandbox/messages          forget them
    PUT    /sandbox/faults/twilio     {"error_rate": 0.5, "error_code": 503, "latency_ms": 200, "retry_after": 2}
    DELETE /sandbox/faults/twilio

``error_code`` is an HTTP status (500, 503, 429...) or a Twilio error code (30008, 21211...),
answered with a Twilio error body; ``error_rate`` defaults to 1 when ``error_code`` is given.
Latency applies to every send while a fault is set; faults apply to sends only.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import math
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final

from aiohttp import web

PROVIDER: Final = "twilio"
API_PREFIX: Final = "/2010-04-01/Accounts"
E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")

#: GSM 03.38 basic set (0x1B, the escape, left out) and the extension table (2 septets each).
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

#: Twilio's error messages; like Twilio's, 21211 echoes the number (our client must not).
ERROR_MESSAGES: Final[dict[int, str]] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
}
#: HTTP status for a Twilio error code; any other code is answered with 400.
CODE_STATUS: Final[dict[int, int]] = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}


def count_segments(text: str) -> int:
    """SMS parts for ``text``: GSM-7 160/153 septets when it fits the alphabet, else UCS-2 70/67."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units, single, part = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text), 160, 153
    else:
        units, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


@dataclass(frozen=True, slots=True)
class Fault:
    """Injected misbehaviour for sends: ``error_code`` with probability ``error_rate``, plus latency."""

    error_rate: float = 0.0
    error_code: int = 500
    latency_ms: int = 0
    retry_after: int | None = None

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Validate a control request; raises ``ValueError`` saying what is wrong."""
        fields = {"error_rate", "error_code", "latency_ms", "retry_after"}
        if not isinstance(data, dict) or not set(data) <= fields:
            raise ValueError(f"expected an object with some of {sorted(fields)}")
        rate = data.get("error_rate", 1.0 if "error_code" in data else 0.0)
        code, latency, retry = data.get("error_code", 500), data.get("latency_ms", 0), data.get("retry_after")
        if not _is_number(rate) or not 0.0 <= rate <= 1.0:
            raise ValueError("error_rate must be a number from 0 to 1")
        if not _is_int(code) or code < 100:
            raise ValueError("error_code must be an HTTP status or a Twilio error code")
        if not _is_int(latency) or latency < 0:
            raise ValueError("latency_ms must be a non-negative integer")
        if retry is not None and (not _is_int(retry) or retry < 0):
            raise ValueError("retry_after must be a non-negative integer")
        return cls(float(rate), code, latency, retry)

    def response(self) -> tuple[int, int]:
        """The (HTTP status, Twilio code) this fault answers with."""
        if self.error_code < 600:
            status = self.error_code
            return status, 20003 if status == 401 else 20000 + status
        return CODE_STATUS.get(self.error_code, 400), self.error_code


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """A message the sandbox accepted, as the control endpoint lists it."""

    provider: str
    sid: str
    to: str
    from_: str | None
    body: str
    received_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "received_at": self.received_at.isoformat(),
        }


class SandboxState:
    """What the sandbox knows: its credentials, the messages it accepted and the current fault."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[RecordedMessage] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.fault: Fault | None = None
        self._rng = rng or random.Random()
        self._now = now or (lambda: datetime.now(UTC))
        self._new_id = new_id or (lambda: uuid.uuid4().hex)

    def __repr__(self) -> str:
        return f"SandboxState(account_sid={self.account_sid!r}, messages={len(self.messages)})"

    def authorized(self, path_sid: str, header: str | None) -> bool:
        """Whether the path's account and the basic-auth credentials are the configured ones."""
        scheme, _, encoded = (header or "").partition(" ")
        try:
            login, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        return (
            scheme.lower() == "basic"
            and sep == ":"
            and hmac.compare_digest(path_sid.encode(), self.account_sid.encode())
            and hmac.compare_digest(login.encode(), self.account_sid.encode())
            and hmac.compare_digest(password.encode(), self.auth_token.encode())
        )

    def failing(self) -> Fault | None:
        """The fault to answer this send with, if the dice say so."""
        if self.fault and self.fault.error_rate > 0 and self._rng.random() < self.fault.error_rate:
            return self.fault
        return None

    def accept(self, to: str, sender: str | None, body: str, service_sid: str | None) -> dict[str, Any]:
        """Record a message and return its Twilio resource."""
        sid, now = "SM" + self._new_id(), self._now()
        uri = f"{API_PREFIX}/{self.account_sid}/Messages/{sid}"
        stamp = format_datetime(now)
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
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
        self.resources[sid] = resource
        self.messages.append(RecordedMessage(PROVIDER, sid, to, sender, body, now))
        return resource

    def clear(self) -> None:
        self.messages.clear()
        self.resources.clear()


STATE: Final = web.AppKey("sandbox_state", SandboxState)


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


def _unauthorized() -> web.Response:
    return twilio_error(20003, 401, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _invalid_send(to: str, sender: str, body: str, service_sid: str) -> web.Response | None:
    """Twilio's 400 for a send missing a parameter or with a malformed number."""
    if not to:
        return twilio_error(21604, 400)
    if not body:
        return twilio_error(21602, 400)
    if not sender and not service_sid:
        return twilio_error(21603, 400)
    if not E164.fullmatch(to):
        return twilio_error(21211, 400, to=to)
    return None


async def create_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.authorized(request.match_info["account_sid"], request.headers.get("Authorization")):
        return _unauthorized()
    if state.fault and state.fault.latency_ms:
        await asyncio.sleep(state.fault.latency_ms / 1000)
    form = await request.post()
    to, sender, body, service_sid = (
        str(form.get(name) or "") for name in ("To", "From", "Body", "MessagingServiceSid")
    )
    if fault := state.failing():
        status, code = fault.response()
        headers = {"Retry-After": str(fault.retry_after or 1)} if status == 429 else None
        return twilio_error(code, status, to=to, headers=headers)
    if error := _invalid_send(to, sender, body, service_sid):
        return error
    resource = state.accept(to, sender or None, body, service_sid or None)
    return web.json_response(resource, status=201)


async def fetch_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.authorized(request.match_info["account_sid"], request.headers.get("Authorization")):
        return _unauthorized()
    resource = state.resources.get(request.match_info["sid"])
    if resource is None:
        return twilio_error(20404, 404, path=request.path)
    return web.json_response(resource)


async def list_messages(request: web.Request) -> web.Response:
    return web.json_response([m.to_json() for m in request.app[STATE].messages])


async def clear_messages(request: web.Request) -> web.Response:
    request.app[STATE].clear()
    return web.Response(status=204)


async def put_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_json(await request.json())
    except ValueError as exc:  # also a body that is not JSON
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE].fault = fault
    return web.json_response(asdict(fault))


async def clear_fault(request: web.Request) -> web.Response:
    request.app[STATE].fault = None
    return web.Response(status=204)


def create_app(state: SandboxState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post(f"{API_PREFIX}/{{account_sid}}/Messages.json", create_message)
    app.router.add_get(f"{API_PREFIX}/{{account_sid}}/Messages/{{sid}}.json", fetch_message)
    app.router.add_get("/sandbox/messages", list_messages)
    app.router.add_delete("/sandbox/messages", clear_messages)
    app.router.add_put(f"/sandbox/faults/{PROVIDER}", put_fault)
    app.router.add_delete(f"/sandbox/faults/{PROVIDER}", clear_fault)
    return app


async def run_sandbox(host: str, port: int, state: SandboxState) -> web.AppRunner:
    """Serve the sandbox; the caller owns the runner (``await runner.cleanup()``).

    With ``port=0`` the bound port is ``runner.addresses[0][1]``.
    """
    runner = web.AppRunner(create_app(state))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
