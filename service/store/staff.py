"""Staff authentication (hashed tokens, sessions, roles), the audit log, and the support look-up queries.

The service's role reaches the staff tables and writes audit rows only through the SECURITY DEFINER
functions of migration 0013 (it passes the secret it was given; the database hashes it, finds the
staff member and sets the time). ``add`` and ``revoke`` are the operator's, run as the owner role.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg

from service.domain.errors import StoreUnavailable
from service.store.postgres import translated

ROLES = ("cs_agent", "admin")
NAME_MAX = 64


class StaffNameTaken(ValueError):
    """Names are unique: audit rows and ``staff revoke --name`` must name one person."""


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request presented: a bearer token, the page's session id, or nothing."""

    kind: Literal["token", "session", "none"]
    secret: str = field(default="", repr=False)


NO_CREDENTIAL = Credential("none")


@dataclass(frozen=True, slots=True)
class Staff:
    name: str
    role: str
    credential: Credential = NO_CREDENTIAL

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
    created_at: datetime | None = None  # when it was first claimed: the decision to notify
    locale: str | None = None
    fallback_due_at: datetime | None = None  # an owed email fallback's next try
    status_check_due_at: datetime | None = None  # the next status look-up of an SMS with no final word
    status_gave_up_at: datetime | None = None  # look-ups stopped at their maximum age
    # the consent the latest decision applied (migration 0018; None before it, or not decided yet)
    consent_state: str | None = None
    consent_source: str | None = None  # as recorded: an operator's name included (staff may see it)
    consent_set_at: datetime | None = None
    number_marked_at: datetime | None = None  # the notification's number is marked undeliverable (0017)
    number_marked_reason: str | None = None  # the provider's word that marked it


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def valid_name(name: str) -> bool:
    return 0 < len(name) <= NAME_MAX and name == name.strip() and name.isprintable()


class StaffStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, name: str, role: str) -> str:
        """Create a staff token; returns it once (only its hash is kept)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if not valid_name(name):
            raise ValueError(f"a staff name is 1 to {NAME_MAX} printable characters, no spaces at its ends")
        token = secrets.token_urlsafe(32)
        try:
            async with translated():
                await self._pool.execute(
                    "INSERT INTO staff_tokens (name, role, token_hash) VALUES ($1, $2, $3)",
                    name,
                    role,
                    _hash(token),
                )
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                raise StaffNameTaken(
                    f"a staff member named {name!r} exists already (also when revoked): choose another name"
                ) from None
            raise
        return token

    async def authenticate(self, token: str) -> Staff | None:
        """The staff member of a bearer token (API)."""
        if not token:
            return None
        async with translated():
            r = await self._pool.fetchrow("SELECT * FROM staff_authenticate($1)", token)
        return None if r is None else Staff(r["staff_name"], r["staff_role"], Credential("token", token))

    async def start_session(self, token: str, *, idle_s: int, max_s: int) -> Staff | None:
        """Sign-in on the page: a new session for the token's staff member (None: no such token)."""
        if not token:
            return None
        session = secrets.token_urlsafe(32)
        async with translated():
            r = await self._pool.fetchrow(
                "SELECT * FROM staff_session_start($1, $2, $3, $4)", token, session, idle_s, max_s
            )
        return None if r is None else Staff(r["staff_name"], r["staff_role"], Credential("session", session))

    async def session(self, session: str) -> Staff | None:
        """The staff member of a live session (touched: its idle time starts again)."""
        if not session:
            return None
        async with translated():
            r = await self._pool.fetchrow("SELECT * FROM staff_session_check($1)", session)
        return None if r is None else Staff(r["staff_name"], r["staff_role"], Credential("session", session))

    async def end_session(self, session: str) -> bool:
        async with translated():
            return bool(await self._pool.fetchval("SELECT staff_session_end($1)", session))

    async def revoke(self, name: str) -> int:
        """Revoke the named staff member's token, which also ends their sessions at once."""
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "UPDATE staff_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL"
                    " RETURNING id",
                    name,
                )
            ]
            await conn.execute(
                "UPDATE staff_sessions SET ended_at = now() WHERE staff_id = ANY($1::bigint[]) AND ended_at IS NULL",
                ids,
            )
        return len(ids)

    async def audit(
        self,
        credential: Credential,
        action: str,
        *,
        order_id: str | None,
        remote: str | None,
        detail: str | None = None,
    ) -> None:
        """One audit row; the database sets the actor (from the credential) and the time."""
        async with translated():
            await self._pool.execute(
                "SELECT audit_write($1, $2, $3, $4, $5, $6)",
                credential.kind,
                credential.secret,
                action,
                order_id,
                remote,
                detail,
            )

    async def can_alter_audit_log(self) -> bool:
        """True when this role owns the audit log (one role for everything) or is a superuser."""
        async with translated():
            return bool(
                await self._pool.fetchval(
                    "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
                    " WHERE oid = 'audit_log'::regclass"
                )
            )

    async def lookup(self, query: str) -> list[SupportRow]:
        """Every notification of the order with this order number or waybill, in milestone order."""
        async with translated():
            rows = await self._pool.fetch(
                "SELECT n.id, n.order_id, n.waybill, n.milestone, n.state, n.channel, n.provider, n.reason,"
                " n.event_occurred_at, n.updated_at, n.delivered_at, c.key_id, c.ciphertext,"
                " n.phone_subject, n.email_subject, n.created_at, n.locale, n.fallback_due_at,"
                " n.status_check_due_at, n.status_gave_up_at, n.consent_state, n.consent_source, n.consent_set_at,"
                " h.marked_at, h.reason AS marked_reason"
                " FROM notifications n LEFT JOIN notification_contacts c ON c.notification_id = n.id"
                " LEFT JOIN phone_health h ON h.subject = n.phone_subject AND h.marked_at IS NOT NULL"
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
                r["created_at"],
                r["locale"],
                r["fallback_due_at"],
                r["status_check_due_at"],
                r["status_gave_up_at"],
                r["consent_state"],
                r["consent_source"],
                r["consent_set_at"],
                r["marked_at"],
                r["marked_reason"],
            )
            for r in rows
        ]

    async def receipts(self, notifications: list[uuid.UUID]) -> dict[uuid.UUID, list[bytes]]:
        """Every receipt of these notifications (the outbox keeps them), each one's in the order written."""
        async with translated():
            rows = await self._pool.fetch(
                "SELECT notification_id, payload FROM receipt_outbox"
                " WHERE notification_id = ANY($1::uuid[]) ORDER BY seq",
                notifications,
            )
        found: dict[uuid.UUID, list[bytes]] = {}
        for r in rows:
            found.setdefault(r["notification_id"], []).append(bytes(r["payload"]))
        return found
