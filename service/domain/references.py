"""Message references: the id we give a provider for one step of one notification, echoed back
in its delivery reports.

``<notification id hex>.<step>.<tag>``, where the tag is an HMAC-SHA256 (truncated to 96 bits)
of the rest under a secret key. The notification id is derived from public data (order id and
milestone); the tag is not, so knowing an order number is not enough to name its message in a
forged report. The same notification and step always give the same reference (a re-claim after a
crash looks the earlier send up by it), as long as the key stays the same.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

_TAG_BYTES = 12
_FORM = re.compile(r"([0-9a-f]{32})\.([0-9]{1,3})\.([0-9a-f]{24})")


class MessageReferences:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a message-reference key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "MessageReferences(<key hidden>)"

    def _tag(self, head: str) -> str:
        return hmac.new(self._key, head.encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES].hex()

    def make(self, notification: uuid.UUID, step: int) -> str:
        head = f"{notification.hex}.{step}"
        return f"{head}.{self._tag(head)}"

    def parse(self, reference: str) -> tuple[uuid.UUID, int] | None:
        """The notification and step a reference names; None unless we made it (tag checked)."""
        match = _FORM.fullmatch(reference)
        if match is None:
            return None
        hex_id, step, tag = match.groups()
        if not hmac.compare_digest(tag, self._tag(f"{hex_id}.{step}")):
            return None
        return uuid.UUID(hex=hex_id), int(step)
