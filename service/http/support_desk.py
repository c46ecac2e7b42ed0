"""What staff do at the support desk: look an order up, record an opt-out, erase personal data.

Every look-up and action is written to the append-only audit log with who, what, which order and
from which address. Staff see a masked phone (``+852 ****4567``) and email (``t***@example.com``),
never the full ones: the sealed event is decrypted in memory only to mask it, and to render again
the text the customer received with the name masked (``陳***``) and no link (its token is the
customer's, not staff's).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from service.compose.render import Renderer
from service.contracts import ReceiptV1, parse_event
from service.domain.errors import NotifierError, RenderError
from service.domain.follow_ups import FollowUp
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import ShipmentUpdate
from service.domain.phone import mask_phone, normalize_hk_mobile
from service.http.support_labels import (
    NUMBER_MARKED,
    milestone_label,
    provider_name,
    reason_label,
    state_label,
)
from service.http.support_timeline import consent_of, steps
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


def hk_time(at: datetime) -> str:
    return f"{at.astimezone(_HK):%Y-%m-%d %H:%M}"


def timeline(
    rows: list[SupportRow],
    receipts: dict[uuid.UUID, list[ReceiptV1]] | None = None,
    texts: dict[uuid.UUID, str] | None = None,
    planned: dict[uuid.UUID, datetime] | None = None,
    follow_ups: dict[uuid.UUID, list[tuple[FollowUp, int, datetime]]] | None = None,
) -> list[dict[str, object]]:
    """Each notification: its codes (the API's), its labels, its steps and the masked text;
    ``planned``: when each scheduled one (quiet hours) is to be released; ``follow_ups``: the
    reminders and survey links scheduled after a pickup notice."""
    receipts, texts, planned = receipts or {}, texts or {}, planned or {}
    follow_ups = follow_ups or {}
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
            "consent": (
                {
                    "state": r.consent_state,
                    "source": r.consent_source,
                    "set_at": r.consent_set_at.isoformat() if r.consent_set_at else None,
                    "label": label._asdict(),
                }
                if (label := consent_of(r))
                else None
            ),
            "release_planned_at": planned[r.notification_id].isoformat()
            if r.notification_id in planned
            else None,
            "time": hk_time(r.updated_at),
            "label": {
                "milestone": milestone_label(r.milestone)._asdict(),
                "state": state_label(r.state)._asdict(),
                "reason": reason_label(r.reason)._asdict() if r.reason else None,
                "provider": provider_name(r.provider),
            },
            "steps": [
                {
                    "time": hk_time(s.at),
                    "at": s.at.isoformat(),
                    "what": s.what._asdict(),
                    "details": [d._asdict() for d in s.details],
                    "upcoming": s.upcoming,
                }
                for s in steps(
                    r,
                    receipts.get(r.notification_id, []),
                    planned.get(r.notification_id),
                    follow_ups.get(r.notification_id, ()),
                )
            ],
            "text": texts.get(r.notification_id),
            "number_marked": _number_marked(r),
        }
        for r in rows
    ]


def _number_marked(r: SupportRow) -> dict[str, object] | None:
    """The notification's number is marked undeliverable (bad-number hygiene): since when, why."""
    if r.number_marked_at is None:
        return None
    return {
        "at": r.number_marked_at.isoformat(),
        "time": hk_time(r.number_marked_at),
        "reason": r.number_marked_reason,
        "label": NUMBER_MARKED._asdict(),
        "reason_label": reason_label(r.number_marked_reason)._asdict() if r.number_marked_reason else None,
    }


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_name(name: str) -> str:
    """``陳大文`` -> ``陳***``, ``Chan Tai Man`` -> ``C***``: the first letter only."""
    name = name.strip()
    return f"{name[:1]}***" if name else ""


def masked_update(update: ShipmentUpdate) -> ShipmentUpdate:
    """The event with its recipient's name masked and no phone or email: fit to render for staff."""
    recipient = dataclasses.replace(
        update.recipient, name=mask_name(update.recipient.name), phone=None, email=None
    )
    return dataclasses.replace(update, recipient=recipient)


class SupportDesk:
    """The audited look-up and actions; ``remote`` is the calling client's address."""

    def __init__(
        self,
        store: PostgresStore,
        staff_store: StaffStore,
        privacy: PrivacyStore,
        keyring: Keyring | None,
        renderer: Renderer | None = None,
        *,
        release_rate_per_s: float = 5.0,
    ) -> None:
        self.store, self.staff_store, self.privacy, self.keyring = store, staff_store, privacy, keyring
        self.renderer = renderer
        self.release_rate_per_s = release_rate_per_s

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
        changed = await self.store.set_consent(
            subjects,
            opted_out=True,
            source=f"operator:{staff.name}",
            order_id=rows[0].order_id if rows else None,
        )
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

    async def details(self, rows: list[SupportRow]) -> list[dict[str, object]]:
        """The notifications as ``timeline`` shows them, with their receipts and masked texts."""
        found = await self.staff_store.receipts([r.notification_id for r in rows])
        receipts: dict[uuid.UUID, list[ReceiptV1]] = {}
        for nid, payloads in found.items():
            try:
                receipts[nid] = [ReceiptV1.model_validate_json(p) for p in payloads]
            except ValidationError:  # a receipt of a newer version: the steps stay as far as known
                continue
        texts = {r.notification_id: t for r in rows if (t := self.customer_text(r)) is not None}
        planned = await self.store.planned_releases(  # quiet hours: when each scheduled one goes
            [r.notification_id for r in rows if r.state == State.SCHEDULED],
            rate_per_s=self.release_rate_per_s,
        )
        follow_ups = await self.store.planned_follow_ups(  # a pickup notice's reminders, survey link
            [r.notification_id for r in rows if r.milestone == Milestone.READY_FOR_PICKUP]
        )
        return timeline(rows, receipts, texts, planned, follow_ups)

    def customer_text(self, row: SupportRow) -> str | None:
        """The text the customer received, rendered again from the template with the name masked;
        None when nothing was sent, the event is erased, or the template no longer renders."""
        update = self._sealed(row)
        if update is None or self.renderer is None or row.channel not in ("sms", "email"):
            return None
        milestone, masked = Milestone(row.milestone), masked_update(update)
        locale = row.locale or self.renderer.choose_locale(update.recipient.locale)
        try:
            if row.channel == "sms":
                return self.renderer.render_sms(milestone, masked, locale, at=row.created_at).body
            return self.renderer.render_email(milestone, masked, locale, at=row.created_at).text
        except RenderError:
            return None

    def _sealed(self, r: SupportRow) -> ShipmentUpdate | None:
        if self.keyring is None or r.key_id is None or r.ciphertext is None:
            return None
        try:
            return parse_event(self.keyring.decrypt(r.key_id, r.ciphertext, r.notification_id.bytes))
        except NotifierError:
            return None

    def masked(self, rows: list[SupportRow]) -> tuple[str, str]:
        """The recipient's masked phone and email, from the first sealed event that can be read."""
        for r in rows:
            update = self._sealed(r)
            if update is None:
                continue
            phone = normalize_hk_mobile(update.recipient.phone).e164 if update.recipient.phone else None
            email = update.recipient.email
            return (mask_phone(phone) if phone else "—", mask_email(email) if email else "—")
        return ("—", "—")
