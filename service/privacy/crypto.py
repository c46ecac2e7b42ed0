"""Authenticated encryption (AES-256-GCM) of personal data at rest, with a keyring for rotation.

Keys live outside the database (settings: ``NOTIFIER_PII_KEYS="k2:<base64 32 bytes>,k1:<...>"``,
the first is the active one). Each ciphertext is stored with the id of its key, so old rows stay
readable after a new key becomes active, and can be re-encrypted at leisure. The associated data
binds a ciphertext to its row (the notification id): a ciphertext copied to another row fails.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.domain.errors import ConfigError, NotifierError

_NONCE = 12


class DecryptionFailed(NotifierError):
    """A ciphertext could not be decrypted: unknown key id, wrong row, or tampered data."""


class Keyring:
    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise ConfigError(f"active key id {active!r} is not in the keyring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ConfigError(f"key {key_id!r} must be 32 bytes (AES-256), got {len(key)}")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active = active

    def __repr__(self) -> str:
        return f"Keyring(keys={sorted(self._aead)}, active={self.active!r})"

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """``"k2:<base64>,k1:<base64>"``: the first key is active."""
        keys: dict[str, bytes] = {}
        first = None
        for item in (part.strip() for part in spec.split(",") if part.strip()):
            key_id, sep, b64 = item.partition(":")
            if not sep or not key_id:
                raise ConfigError("NOTIFIER_PII_KEYS: each key is written id:base64")
            try:
                keys[key_id] = base64.b64decode(b64, validate=True)
            except binascii.Error:
                raise ConfigError(f"NOTIFIER_PII_KEYS: key {key_id!r} is not valid base64") from None
            first = first or key_id
        if first is None:
            raise ConfigError("NOTIFIER_PII_KEYS is empty: generate a key with `notifier keys generate`")
        return cls(keys, first)

    @staticmethod
    def generate_spec(key_id: str = "k1") -> str:
        return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        return self.active, nonce + self._aead[self.active].encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        aead = self._aead.get(key_id)
        if aead is None:
            raise DecryptionFailed(f"unknown key id {key_id!r}")
        try:
            return aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad)
        except InvalidTag:
            raise DecryptionFailed("ciphertext does not authenticate") from None
