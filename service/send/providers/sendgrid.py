"""SendGrid v3 Mail Send client (``POST /v3/mail/send``) and SendGrid's Signed Event Webhook.

A 202 only means SendGrid queued the message; what happened next arrives as events
(processed, delivered, bounce...) on the Event Webhook, each carrying our ``ref`` custom arg.
Those requests are signed with ECDSA P-256 over ``timestamp + body``
(``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``); ``verify_sendgrid_signature``
checks one (``fresh`` bounds its timestamp), ``EventWebhookSigner`` makes one (for the sandbox
and tests), and ``parse_events`` reads the events into delivery reports (it and ``fresh`` live in
``sendgrid_reports`` with SendGrid's event vocabulary and are re-exported here).

Privacy: SendGrid's error ``message`` text is never copied into our errors; only the HTTP status
and, to tell an invalid recipient from our own mistake, the error's ``field`` path are read.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from service.domain.ports import EmailMessage, SendAccepted
from service.send.providers.sendgrid_reports import PROVIDER, fresh, parse_events
from service.send.providers.wire import Reply, parse_retry_after, request

__all__ = [
    "PROVIDER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "EventWebhookSigner",
    "SendGridClient",
    "fresh",
    "parse_events",
    "verify_sendgrid_signature",
]

SEND_PATH: Final = "/v3/mail/send"
SIGNATURE_HEADER: Final = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER: Final = "X-Twilio-Email-Event-Webhook-Timestamp"

#: An error ``field`` naming a recipient's address: ``personalizations.0.to.0.email``.
RECIPIENT_FIELD: Final = re.compile(r"personalizations\.\d+\.(?:to|cc|bcc)\.\d+\.email")

#: HTTP status -> our error, for what is not a 400 (which depends on the field) or a 5xx.
STATUS_CLASSES: Final[dict[int, type[ProviderError]]] = {
    401: ProviderRejected,  # API key invalid, expired or revoked
    403: ProviderRejected,  # key lacks mail.send, or the sender is not verified
    404: ProviderRejected,
    413: ContentRejected,  # the message is larger than SendGrid takes (30 MB)
    429: RateLimited,
}


class SendGridClient:
    """Sends email through SendGrid's v3 Mail Send API; implements ``EmailSender``."""

    name: str = PROVIDER

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        sender_email: str,
        sender_name: str,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json", "Authorization": f"Bearer {api_key}"}
        self._sender = {"email": sender_email, "name": sender_name}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock

    def __repr__(self) -> str:
        return f"SendGridClient(base_url={self._base_url!r})"

    def payload(self, to: str, message: EmailMessage, *, reference: str) -> dict[str, Any]:
        """The JSON of one mail/send request: plain text first, then HTML, as SendGrid requires."""
        content = [
            {"type": kind, "value": value}
            for kind, value in (("text/plain", message.text), ("text/html", message.html))
            if value
        ]
        return {
            "personalizations": [{"to": [{"email": to}], "custom_args": {"ref": reference}}],
            "from": dict(self._sender),
            "subject": message.subject,
            "content": content,
        }

    async def send_email(self, to: str, message: EmailMessage, *, reference: str) -> SendAccepted:
        reply = await request(
            self._session,
            "POST",
            self._base_url + SEND_PATH,
            provider=PROVIDER,
            client_timeout=self._timeout,
            headers=self._headers,
            json_body=self.payload(to, message, reference=reference),
        )
        if reply.status in (200, 202):
            # 202 is certain: SendGrid queued it. Its id only helps people correlate, so a
            # missing header is no reason to send the email again.
            return SendAccepted(PROVIDER, reply.headers.get("X-Message-Id", ""), "queued")
        raise self.error_for(reply)

    def error_for(self, reply: Reply) -> ProviderError:
        """Our error for a refused request."""
        status, code = reply.status, str(reply.status)
        if status == 400:
            return _bad_request(reply.payload)
        if status >= 500:
            return ProviderUnavailable(PROVIDER, code)
        cls = STATUS_CLASSES.get(status, ProviderRejected)
        if cls is RateLimited:
            return RateLimited(PROVIDER, code, self._retry_after(reply))
        return cls(PROVIDER, code)

    def _retry_after(self, reply: Reply) -> float | None:
        """``Retry-After`` if given, else SendGrid's ``X-RateLimit-Reset`` (epoch seconds) from now."""
        if (seconds := parse_retry_after(reply.headers.get("Retry-After"))) is not None:
            return seconds
        reset = parse_retry_after(reply.headers.get("X-RateLimit-Reset"))
        return None if reset is None else max(0.0, reset - self._clock())


def _bad_request(payload: Any) -> ProviderError:
    """400: an invalid recipient when every error names a recipient's address, else our request."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    fields = [e.get("field") for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    if fields and all(isinstance(f, str) and RECIPIENT_FIELD.fullmatch(f) for f in fields):
        return InvalidRecipient(PROVIDER, "400")
    return ProviderRejected(PROVIDER, "400")


def verify_sendgrid_signature(
    public_key_b64: str, payload: bytes, signature_b64: str, timestamp: str
) -> bool:
    """Whether ``signature_b64`` is SendGrid's Signed Event Webhook signature of this request.

    ECDSA P-256 with SHA-256 over ``timestamp.encode() + payload``; the signature is base64 DER,
    the key base64 DER SubjectPublicKeyInfo (as SendGrid's settings page shows it).
    """
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key_b64, validate=True))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # binascii.Error is a ValueError
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return False
    try:
        key.verify(signature, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class EventWebhookSigner:
    """Signs Event Webhook requests the way SendGrid does, with its own P-256 key pair."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = private_key or ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64 = base64.b64encode(der).decode("ascii")

    def __repr__(self) -> str:
        return f"EventWebhookSigner(public_key_b64={self.public_key_b64[:16]!r}...)"

    def sign(self, payload: bytes, timestamp: str) -> str:
        """The base64 DER signature of ``timestamp + payload``."""
        signature = self._key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode("ascii")

    def headers(self, payload: bytes, timestamp: str) -> dict[str, str]:
        """The two headers SendGrid sets on a signed Event Webhook request."""
        return {SIGNATURE_HEADER: self.sign(payload, timestamp), TIMESTAMP_HEADER: timestamp}
