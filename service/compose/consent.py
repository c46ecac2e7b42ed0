"""Consent: whether the recipient opted out (by their blind indexes), for a batch at once or one
notification, with the snapshot of the consent that applied (state, source, when it was set) taken
from that same look-up; and an opt-out a provider reports (a STOP reply) honoured on every channel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from service.domain.consent_snapshot import ConsentSnapshot, snapshot
from service.domain.lifecycle import State
from service.domain.model import ShipmentUpdate
from service.domain.outcome import ClaimRequest
from service.domain.ports import NotificationStore
from service.privacy.subjects import RecipientSubjects


class Consent:
    def __init__(self, store: NotificationStore, subjects: RecipientSubjects) -> None:
        self._store = store
        self._subjects = subjects

    async def snapshots(self, work: Sequence[ClaimRequest]) -> dict[uuid.UUID, ConsentSnapshot]:
        """The consent of every notification of the batch (claimed or stale, each decision records
        it): one look-up for the whole batch."""
        subjects = {
            r.notification_id: [x for x in (r.phone_subject, r.email_subject) if x is not None] for r in work
        }
        records = await self._store.consent_records(sorted({s for ss in subjects.values() for s in ss}))
        return {nid: snapshot(records[s] for s in ss if s in records) for nid, ss in subjects.items()}

    async def opted_out_of(self, work: Sequence[ClaimRequest]) -> set[uuid.UUID]:
        """The claimed notifications whose recipient opted out: one look-up for the whole batch."""
        found = await self.snapshots([r for r in work if r.state == State.CLAIMED])
        return {nid for nid, s in found.items() if s.opted_out}

    async def of(self, update: ShipmentUpdate) -> ConsentSnapshot:
        """The consent of one notification's recipient (the email fallback's own look-up)."""
        subjects = [x for x in self._subjects.of(update) if x is not None]
        records = await self._store.consent_records(subjects)
        return snapshot(records.values())

    async def opted_out(self, update: ShipmentUpdate) -> bool:
        return (await self.of(update)).opted_out

    async def provider_opt_out(self, e164: str, provider: str | None, *, order_id: str | None = None) -> None:
        """The provider says the recipient opted out with it (e.g. replied STOP): honour it everywhere."""
        await self._store.set_consent(
            [self._subjects.phone(e164)], opted_out=True, source=f"provider:{provider}", order_id=order_id
        )
