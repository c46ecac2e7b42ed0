"""Consent: whether the recipient opted out (by their blind indexes), for a batch at once or one
notification; and an opt-out a provider reports (a STOP reply) honoured on every channel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from service.domain.lifecycle import State
from service.domain.model import ShipmentUpdate
from service.domain.outcome import ClaimRequest
from service.domain.ports import NotificationStore
from service.privacy.subjects import RecipientSubjects


class Consent:
    def __init__(self, store: NotificationStore, subjects: RecipientSubjects) -> None:
        self._store = store
        self._subjects = subjects

    async def opted_out_of(self, work: Sequence[ClaimRequest]) -> set[uuid.UUID]:
        """The claimed notifications whose recipient opted out: one look-up for the whole batch."""
        subjects = {
            r.notification_id: {x for x in (r.phone_subject, r.email_subject) if x is not None}
            for r in work
            if r.state == State.CLAIMED
        }
        blocked = await self._store.opted_out(sorted({s for ss in subjects.values() for s in ss}))
        return {nid for nid, ss in subjects.items() if ss & blocked}

    async def opted_out(self, update: ShipmentUpdate) -> bool:
        return bool(await self._store.opted_out([x for x in self._subjects.of(update) if x is not None]))

    async def provider_opt_out(self, e164: str, provider: str | None) -> None:
        """The provider says the recipient opted out with it (e.g. replied STOP): honour it everywhere."""
        await self._store.set_consent(
            [self._subjects.phone(e164)], opted_out=True, source=f"provider:{provider}"
        )
