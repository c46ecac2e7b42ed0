"""What the sandbox knows and does behind every provider's API: credentials, the messages it
accepted (all providers, in order), the faults in force, and the delivery callbacks it sends.

Callbacks never hold up an API response: each is a background task, tracked so that the app's
cleanup (or a test, with ``await state.callbacks.drain()``) can wait for all of them. A callback
that cannot be delivered is recorded in ``state.callbacks.failures``, never raised.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from aiohttp import web

from service.sandbox.faults import Fault
from service.send.providers.sendgrid import EventWebhookSigner

PROVIDERS: Final = ("twilio", "infobip", "sendgrid")

#: GSM 03.38 basic set (0x1B, the escape, left out) and the extension table (2 septets each).
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")


def count_segments(text: str) -> int:
    """SMS parts for ``text``: GSM-7 160/153 septets when it fits the alphabet, else UCS-2 70/67."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units, single, part = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text), 160, 153
    else:
        units, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """A message the sandbox accepted, as the control endpoint lists it.

    ``sid`` is the provider's id (Twilio SID, Infobip messageId, SendGrid X-Message-Id); for
    email ``to`` is the address and ``body`` the plain-text part. ``received_mono`` is
    ``time.monotonic()`` at acceptance, for measuring send rates.
    """

    provider: str
    sid: str
    to: str
    from_: str | None
    body: str
    received_at: datetime
    received_mono: float = 0.0
    reference: str | None = None
    subject: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "subject": self.subject,
            "reference": self.reference,
            "received_at": self.received_at.isoformat(),
            "received_mono": self.received_mono,
        }


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """One callback request: the receiver's HTTP status, or why it got none."""

    provider: str
    url: str
    status: int | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "url": self.url, "status": self.status, "error": self.error}


class Callbacks:
    """Sends delivery callbacks in background tasks and remembers how each went."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.sent: list[CallbackAttempt] = []
        self.failures: list[CallbackAttempt] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def spawn(self, provider: str, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (a sequence of ``post`` calls) in the background."""
        task = asyncio.create_task(self._guard(provider, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post(self, provider: str, url: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """POST one callback; True when the receiver answered 2xx. Never raises."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(url, data=body, headers=dict(headers)) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self.failures.append(CallbackAttempt(provider, url, None, type(exc).__name__))
            return False
        attempt = CallbackAttempt(provider, url, status)
        (self.sent if 200 <= status < 300 else self.failures).append(attempt)
        return 200 <= status < 300

    async def drain(self) -> None:
        """Wait until every callback scheduled so far (and any they schedule) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Let pending callbacks finish (cancel what is left after ``timeout_s``), close the session."""
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _guard(self, provider: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # a bug in a callback sequence is recorded, not raised
            self.failures.append(CallbackAttempt(provider, "", None, type(exc).__name__))


class SandboxState:
    """Credentials, accepted messages, faults and callbacks of every sandbox provider.

    Defaults for the Infobip and SendGrid secrets are the service settings' defaults, so that a
    service started with default settings talks to a sandbox started with defaults.
    ``sendgrid_event_webhook_url`` is where SendGrid events go (none are sent without it);
    Twilio and Infobip call back on the URL each message names.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        infobip_api_key: str = "sandbox-infobip-key",
        infobip_webhook_user: str = "infobip",
        infobip_webhook_password: str = "sandbox-infobip-webhook",  # noqa: S107  # the settings' sandbox default
        sendgrid_api_key: str = "sandbox-sendgrid-key",
        sendgrid_event_webhook_url: str | None = None,
        sendgrid_signer: EventWebhookSigner | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.infobip_api_key = infobip_api_key
        self.infobip_webhook_user = infobip_webhook_user
        self.infobip_webhook_password = infobip_webhook_password
        self.sendgrid_api_key = sendgrid_api_key
        self.sendgrid_event_webhook_url = sendgrid_event_webhook_url
        self.sendgrid_signer = sendgrid_signer or EventWebhookSigner()
        self.messages: list[RecordedMessage] = []
        self.resources: dict[str, dict[str, Any]] = {}  # Twilio message resources by SID
        self.infobip_logs: dict[str, dict[str, Any]] = {}  # Infobip messages by messageId
        self.faults: dict[str, Fault] = {}
        self.callbacks = Callbacks()
        self.rng = rng or random.Random()
        self._now = now or (lambda: datetime.now(UTC))
        self._monotonic = monotonic or time.monotonic
        self._new_id = new_id or (lambda: uuid.uuid4().hex)

    def __repr__(self) -> str:
        return f"SandboxState(account_sid={self.account_sid!r}, messages={len(self.messages)})"

    @property
    def fault(self) -> Fault | None:
        """Twilio's fault (the sandbox's only provider before there were three)."""
        return self.faults.get("twilio")

    @fault.setter
    def fault(self, value: Fault | None) -> None:
        self.set_fault("twilio", value)

    def set_fault(self, provider: str, fault: Fault | None) -> None:
        if fault is None:
            self.faults.pop(provider, None)
        else:
            self.faults[provider] = fault

    def now(self) -> datetime:
        return self._now()

    def monotonic(self) -> float:
        return self._monotonic()

    def new_id(self) -> str:
        """32 hex digits (unless a test injects its own ids)."""
        return self._new_id()

    async def admit(self, provider: str) -> Fault | None:
        """Before a send: wait the injected latency, then the fault to answer with, if any."""
        fault = self.faults.get(provider)
        if fault is None:
            return None
        if delay := fault.latency_s(self.rng):
            await asyncio.sleep(delay)
        if fault.in_outage(self.monotonic()):
            return Fault(error_rate=1.0, error_code=503)
        return fault if fault.fails(self.rng) else None

    def undelivered(self, provider: str) -> bool:
        """Whether the dice say this accepted message will be reported undelivered."""
        fault = self.faults.get(provider)
        return fault is not None and fault.undelivered(self.rng)

    def callback_delay_s(self, provider: str) -> float:
        fault = self.faults.get(provider)
        return fault.callback_delay_ms / 1000 if fault else 0.0

    def record(
        self,
        provider: str,
        sid: str,
        to: str,
        from_: str | None,
        body: str,
        *,
        reference: str | None = None,
        subject: str | None = None,
        at: datetime | None = None,
    ) -> RecordedMessage:
        message = RecordedMessage(
            provider,
            sid,
            to,
            from_,
            body,
            at or self.now(),
            self.monotonic(),
            reference,
            subject,
        )
        self.messages.append(message)
        return message

    def listed(self, provider: str | None = None) -> list[RecordedMessage]:
        return [m for m in self.messages if provider is None or m.provider == provider]

    def clear(self) -> None:
        """Forget every message (faults and callback records stay)."""
        self.messages.clear()
        self.resources.clear()
        self.infobip_logs.clear()


STATE: Final = web.AppKey("sandbox_state", SandboxState)
