"""What staff do at the support desk: look an order up, record an opt-out, erase personal data.

Every look-up and action is written to the append-only audit log with who, what, which order and
from which address. Staff see a masked phone (``+852 ****4567``) and email (``t***@example.com``),
never the full ones: the sealed event is decrypted in memory only to mask it.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from service.contracts import parse_event
from service.domain.errors import NotifierError
from service.domain.phone import mask_phone, normalize_hk_mobile
from service.privacy.crypto import Keyring
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.store.staff import Staff, StaffStore, SupportRow

_HK = ZoneInfo("Asia/Hong_Kong")
QUERY_MAX = 64  # the contract's longest order id or waybill


def valid_query(raw: object) -> str | None:
    """An order id or waybill as the contract allows them (1-64 characters, no control
    character), stripped; None for anything else (a NUL, an over-long string, not text)."""
    if not isinstance(raw, str):
        return None
    q = raw.strip()
    if not 0 < len(q) <= QUERY_MAX or any(ord(c) < 0x20 or ord(c) == 0x7F for c in q):
        return None
    try:
        q.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return None
    return q


def timeline(rows: list[SupportRow]) -> list[dict[str, object]]:
    return [
        {
            "milestone": r.milestone,
            "state": r.state,
            "reason": r.reason,
            "channel": r.channel,
            "provider": r.provider,
            "occurred_at": r.occurred_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            "time": f"{r.updated_at.astimezone(_HK):%Y-%m-%d %H:%M}",
        }
        for r in rows
    ]


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


class SupportDesk:
    """The audited look-up and actions; ``remote`` is the calling client's address."""

    def __init__(
        self, store: PostgresStore, staff_store: StaffStore, privacy: PrivacyStore, keyring: Keyring | None
    ) -> None:
        self.store, self.staff_store, self.privacy, self.keyring = store, staff_store, privacy, keyring

    async def find(self, staff: Staff, query: str, remote: str) -> list[SupportRow]:
        rows = await self.staff_store.lookup(query)
        await self.staff_store.audit(
            staff.credential,
            "lookup",
            order_id=rows[0].order_id if rows else None,
            remote=remote,
            detail=None if rows else "no match",
        )
        return rows

    async def opt_out(self, staff: Staff, order: str, remote: str) -> int:
        rows = await self.staff_store.lookup(order)
        subjects = sorted({s for r in rows for s in (r.phone_subject, r.email_subject) if s is not None})
        changed = await self.store.set_consent(subjects, opted_out=True, source=f"operator:{staff.name}")
        await self.staff_store.audit(
            staff.credential, "opt_out", order_id=order, remote=remote, detail=f"{changed} changed"
        )
        return changed

    async def erase(self, staff: Staff, order: str, remote: str) -> int:
        d = await self.privacy.erase_order(order)
        await self.staff_store.audit(
            staff.credential, "erase", order_id=order, remote=remote, detail=f"{d.contacts} sealed"
        )
        return d.contacts

    def masked(self, rows: list[SupportRow]) -> tuple[str, str]:
        """The recipient's masked phone and email, from the first sealed event that can be read."""
        for r in rows:
            if self.keyring is None or r.key_id is None or r.ciphertext is None:
                continue
            try:
                update = parse_event(self.keyring.decrypt(r.key_id, r.ciphertext, r.notification_id.bytes))
            except NotifierError:
                continue
            phone = normalize_hk_mobile(update.recipient.phone).e164 if update.recipient.phone else None
            email = update.recipient.email
            return (mask_phone(phone) if phone else "—", mask_email(email) if email else "—")
        return ("—", "—")
