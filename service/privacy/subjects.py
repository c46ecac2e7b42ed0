"""The recipient as the store may know them: blind indexes of their phone and email, never plaintext.

Claims carry them (consent look-ups, erasure requests, support searches); consent is read by them.
"""

from __future__ import annotations

from service.domain.model import ShipmentUpdate
from service.domain.phone import normalize_hk_mobile
from service.privacy.blind_index import BlindIndex


class RecipientSubjects:
    def __init__(self, blind_index: BlindIndex, *, allow_foreign_mobiles: bool = False) -> None:
        self._blind = blind_index
        self._foreign = allow_foreign_mobiles

    def of(self, update: ShipmentUpdate) -> tuple[bytes | None, bytes | None]:
        """Blind indexes of the recipient's phone (E.164, if it is a valid mobile) and email."""
        r = update.recipient
        e164 = normalize_hk_mobile(r.phone, allow_foreign_mobiles=self._foreign).e164 if r.phone else None
        return (self._blind.phone(e164) if e164 else None, self._blind.email(r.email) if r.email else None)

    def phone(self, e164: str) -> bytes:
        return self._blind.phone(e164)
