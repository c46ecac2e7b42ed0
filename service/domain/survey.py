"""Signed, expiring links to the satisfaction survey.

A token is 30 URL-safe characters, 22 bytes: a version byte, an 8-byte survey id (a keyed hash of
the notification the survey follows, so it names neither the order nor the customer), a 4-byte
expiry (Unix seconds), a locale byte (the survey's language) and an 8-byte HMAC-SHA256 of all of
them under a key of its own (``NOTIFIER_SURVEY_LINK_KEY``, domain-separated from every other
use). The survey (ours or a survey tool given the key) verifies it: a changed character fails
the MAC, an old token fails the expiry, and valid ones cannot be made or enumerated without the
key. Pure: no I/O, the time is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit, urlunsplit

#: Bounds of the link (and of its settings, ``service.config.pickups``).
MIN_KEY_BYTES: Final = 32
MAX_TTL_DAYS: Final = 365
VERSION: Final = 1
LOCALES: Final = ("zh-HK", "en")  # index = the token's locale byte
_VER, _ID, _EXP, _LOC, _MAC = 1, 8, 4, 1, 8
_BODY: Final = _VER + _ID + _EXP + _LOC
TOKEN_LENGTH: Final = 30  # base64url of 22 bytes, unpadded


class SurveyLinkInvalid(ValueError):
    """A token that is malformed, tampered with, or expired; ``reason`` says which (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SurveyRef:
    """What a valid token names."""

    survey_id: bytes  # 8 bytes: ``SurveySigner.survey_id`` of the notification the survey follows
    locale: str
    expires_at: datetime


class SurveySigner:
    def __init__(self, key: bytes, base_url: str, ttl_days: int = 30) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"survey link key must be at least {MIN_KEY_BYTES} bytes")
        if not 1 <= ttl_days <= MAX_TTL_DAYS:
            raise ValueError(f"survey link ttl must be 1 to {MAX_TTL_DAYS} days")
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise ValueError("survey base URL must be an http(s) URL with a host and no #fragment")
        self._key = key
        self._base = parts
        self._ttl = timedelta(days=ttl_days)

    def __repr__(self) -> str:
        return f"SurveySigner(base_url={urlunsplit(self._base)!r})"

    def survey_id(self, notification: uuid.UUID) -> bytes:
        return hmac.new(self._key, b"survey-id\x00" + notification.bytes, hashlib.sha256).digest()[:_ID]

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"survey-token\x00" + body, hashlib.sha256).digest()[:_MAC]

    def token(self, notification: uuid.UUID, locale: str, now: datetime) -> str:
        """A token valid for the TTL from ``now``, for the survey in ``locale`` (zh-HK or en)."""
        if locale not in LOCALES:
            raise ValueError(f"survey locale must be one of {', '.join(LOCALES)}")
        expires = int((now.astimezone(UTC) + self._ttl).timestamp())
        body = (
            bytes([VERSION])
            + self.survey_id(notification)
            + expires.to_bytes(_EXP, "big")
            + bytes([LOCALES.index(locale)])
        )
        return base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def url(self, notification: uuid.UUID, locale: str, now: datetime) -> str:
        """The survey's address with the token as ``t`` (after any query the address has)."""
        token = self.token(notification, locale, now)
        query = f"{self._base.query}&t={token}" if self._base.query else f"t={token}"
        return urlunsplit(self._base._replace(query=query))

    def verify(self, token: str, now: datetime) -> SurveyRef:
        """What a valid token names; raises ``SurveyLinkInvalid`` otherwise."""
        if len(token) != TOKEN_LENGTH:
            raise SurveyLinkInvalid("malformed")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise SurveyLinkInvalid("malformed") from None
        if len(raw) != _BODY + _MAC or base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
            raise SurveyLinkInvalid("malformed")  # only the one spelling of the bytes is accepted
        body, mac = raw[:_BODY], raw[_BODY:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise SurveyLinkInvalid("tampered")
        if body[0] != VERSION or body[-1] >= len(LOCALES):
            raise SurveyLinkInvalid("malformed")
        expires_at = datetime.fromtimestamp(int.from_bytes(body[_VER + _ID : _VER + _ID + _EXP], "big"), UTC)
        if now.astimezone(UTC) >= expires_at:
            raise SurveyLinkInvalid("expired")
        return SurveyRef(body[_VER : _VER + _ID], LOCALES[body[-1]], expires_at)
