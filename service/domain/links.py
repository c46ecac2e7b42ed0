"""Signed, expiring, short links for the order-status and unsubscribe pages.

A token is 22 URL-safe characters: an 8-byte link id (a keyed hash of the notification id, so
it reveals neither the order number nor the phone), a 2-byte expiry day, and a 6-byte HMAC of
both. A changed character fails the MAC; an old token fails the expiry; nothing about the
customer can be learnt from one, and valid ones cannot be enumerated without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime

_EPOCH = date(2020, 1, 1)
_ID, _EXP, _MAC = 8, 2, 6


class LinkInvalid(ValueError):
    """A token that is malformed, tampered with, or expired; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkSigner:
    def __init__(self, key: bytes, base_url: str, ttl_days: int = 90) -> None:
        if len(key) < 32:
            raise ValueError("link signing key must be at least 32 bytes")
        self._key = key
        self.base_url = base_url.rstrip("/")
        self._ttl = ttl_days

    def __repr__(self) -> str:
        return f"LinkSigner(base_url={self.base_url!r})"

    def link_id(self, notification: uuid.UUID) -> bytes:
        return hmac.new(self._key, b"link\x00" + notification.bytes, hashlib.sha256).digest()[:_ID]

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"token\x00" + body, hashlib.sha256).digest()[:_MAC]

    def token(self, notification: uuid.UUID, now: datetime) -> str:
        expires = (now.astimezone(UTC).date() - _EPOCH).days + self._ttl
        body = self.link_id(notification) + expires.to_bytes(_EXP, "big")
        return base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def verify(self, token: str, now: datetime) -> bytes:
        """The link id a valid token names; raises ``LinkInvalid`` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise LinkInvalid("malformed") from None
        if len(raw) != _ID + _EXP + _MAC:
            raise LinkInvalid("malformed")
        body, mac = raw[: _ID + _EXP], raw[_ID + _EXP :]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise LinkInvalid("tampered")
        if int.from_bytes(body[_ID:], "big") < (now.astimezone(UTC).date() - _EPOCH).days:
            raise LinkInvalid("expired")
        return body[:_ID]

    def status_url(self, notification: uuid.UUID, now: datetime) -> str:
        return f"{self.base_url}/s/{self.token(notification, now)}"

    def unsubscribe_url(self, notification: uuid.UUID, now: datetime) -> str:
        return f"{self.base_url}/u/{self.token(notification, now)}"
