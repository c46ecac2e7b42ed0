"""Blind indexes: keyed hashes (HMAC-SHA256) that let us find a phone number or an email address
(opt-outs, erasure requests) without storing it in the clear. Without the key, a blind index
cannot be reversed or enumerated; the key lives outside the database (NOTIFIER_BLIND_INDEX_KEY).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from service.domain.errors import ConfigError


class BlindIndex:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ConfigError("NOTIFIER_BLIND_INDEX_KEY must be at least 32 bytes (base64)")
        self._key = key

    def __repr__(self) -> str:
        return "BlindIndex(<key hidden>)"

    @classmethod
    def parse(cls, b64: str) -> BlindIndex:
        try:
            return cls(base64.b64decode(b64, validate=True))
        except binascii.Error:
            raise ConfigError("NOTIFIER_BLIND_INDEX_KEY is not valid base64") from None

    def _mac(self, kind: bytes, value: str) -> bytes:
        return hmac.new(self._key, kind + b"\x00" + value.encode(), hashlib.sha256).digest()

    def derive_key(self, purpose: str) -> bytes:
        """A key of its own for another use of the same secret (e.g. message references), so that
        no value made for one use can be passed off as one made for another."""
        return self._mac(b"derive", purpose)

    def phone(self, e164: str) -> bytes:
        """The index of a phone number in E.164 form."""
        return self._mac(b"phone", e164.strip())

    def email(self, address: str) -> bytes:
        """The index of an email address; case and surrounding spaces do not matter."""
        return self._mac(b"email", address.strip().lower())
