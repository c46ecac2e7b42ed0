"""Staff authentication (hashed tokens, roles), the audit log, and the support look-up queries."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from service.store.postgres import translated

ROLES = ("cs_agent", "admin")


@dataclass(frozen=True, slots=True)
class Staff:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class SupportRow:
    """One notification as support sees it: no personal data but the sealed event, for masking."""

    notification_id: uuid.UUID
    order_id: str
    waybill: str
    milestone: str
    state: str
    channel: str | None
    provider: str | None
    reason: str | None
    occurred_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    key_id: str | None
    ciphertext: bytes | None
    phone_subject: bytes | None
    email_subject: bytes | None


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class StaffStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, name: str, role: str) -> str:
        """Create a staff token; returns it once (only its hash is kept)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        token = secrets.token_urlsafe(32)
        async with translated():
            await self._pool.execute(
                "INSERT INTO staff_tokens (name, role, token_hash) VALUES ($1, $2, $3)",
                name,
                role,
                _hash(token),
            )
        return token

    async def authenticate(self, token: str) -> Staff | None:
        if not token:
            return None
        async with translated():
            r = await self._pool.fetchrow(
                "SELECT name, role FROM staff_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                _hash(token),
            )
        return None if r is None else Staff(r["name"], r["role"])

    async def revoke(self, name: str) -> int:
        async with translated():
            result = await self._pool.execute(
                "UPDATE staff_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
            )
        return int(result.split()[-1])

    async def audit(
        self,
        staff: Staff,
        action: str,
        *,
        order_id: str | None,
        remote: str | None,
        detail: str | None = None,
    ) -> None:
        async with translated():
            await self._pool.execute(
                "INSERT INTO audit_log (actor, role, action, order_id, remote, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                staff.name,
                staff.role,
                action,
                order_id,
                remote,
                detail,
            )

    async def lookup(self, query: str) -> list[SupportRow]:
        """Every notification of the order with this order number or waybill, in milestone order."""
        async with translated():
            rows = await self._pool.fetch(
                "SELECT n.id, n.order_id, n.waybill, n.milestone, n.state, n.channel, n.provider, n.reason,"
                " n.event_occurred_at, n.updated_at, n.delivered_at, c.key_id, c.ciphertext,"
                " n.phone_subject, n.email_subject"
                " FROM notifications n LEFT JOIN notification_contacts c ON c.notification_id = n.id"
                " WHERE n.order_id IN (SELECT order_id FROM notifications WHERE order_id = $1 OR waybill = $1)"
                " ORDER BY n.milestone_rank",
                query.strip(),
            )
        return [
            SupportRow(
                r["id"],
                r["order_id"],
                r["waybill"],
                r["milestone"],
                r["state"],
                r["channel"],
                r["provider"],
                r["reason"],
                r["event_occurred_at"],
                r["updated_at"],
                r["delivered_at"],
                r["key_id"],
                bytes(r["ciphertext"]) if r["ciphertext"] is not None else None,
                bytes(r["phone_subject"]) if r["phone_subject"] is not None else None,
                bytes(r["email_subject"]) if r["email_subject"] is not None else None,
            )
            for r in rows
        ]
