"""The recipient lists, read and written by blind index: pilot mode's allow-list and the numbers
marked undeliverable (``service.domain.screening`` decides what they mean for a notification).

Read for a whole batch at once (``screens``, one look-up per list) or for one notification (the
email fallback); written when a provider refuses a number (``refused``) and when an SMS's delivery
report comes (``reported``). Marks are counted in ``notifier_bad_numbers_marked_total{why}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from service.domain import reasons
from service.domain.lifecycle import State
from service.domain.model import ShipmentUpdate
from service.domain.outcome import ClaimRequest
from service.domain.ports import NotificationStore
from service.domain.screening import OPEN, MarkedBy, NumberPolicy, Screen
from service.logs import get_logger
from service.metrics import Metrics
from service.privacy.subjects import RecipientSubjects

log = get_logger(__name__)


def _never(provider: str, code: str) -> bool:
    return False


class RecipientChecks:
    def __init__(
        self,
        store: NotificationStore,
        subjects: RecipientSubjects,
        metrics: Metrics,
        *,
        pilot_mode: bool = False,
        policy: NumberPolicy | None = None,
        permanent: Callable[[str, str], bool] = _never,  # (provider, code): the number cannot take SMS
    ) -> None:
        self._store = store
        self._subjects = subjects
        self._metrics = metrics
        self.pilot_mode = pilot_mode
        self._policy = policy or NumberPolicy()
        self._permanent = permanent

    async def screens(self, work: Sequence[ClaimRequest]) -> dict[uuid.UUID, Screen]:
        """The lists' word on each claimed notification of a batch (one look-up per list)."""
        claimed = [r for r in work if r.state == State.CLAIMED]
        phones = sorted({r.phone_subject for r in claimed if r.phone_subject is not None})
        listed: set[bytes] = set()
        if self.pilot_mode:
            emails = {r.email_subject for r in claimed if r.email_subject is not None}
            listed = await self._store.pilot_listed(sorted({*phones, *emails}))
        marked = await self._store.marked_numbers(phones)
        return {
            r.notification_id: self._screen(r.phone_subject, r.email_subject, listed, marked) for r in claimed
        }

    async def screen(self, update: ShipmentUpdate) -> Screen:
        """The lists' word on one notification's recipient."""
        phone, email = self._subjects.of(update)
        listed: set[bytes] = set()
        if self.pilot_mode:
            listed = await self._store.pilot_listed([s for s in (phone, email) if s is not None])
        marked = await self._store.marked_numbers([phone]) if phone is not None else set()
        return self._screen(phone, email, listed, marked)

    def _screen(
        self, phone: bytes | None, email: bytes | None, listed: set[bytes], marked: set[bytes]
    ) -> Screen:
        if not self.pilot_mode and phone not in marked:
            return OPEN
        return Screen(
            pilot=self.pilot_mode,
            mobile=phone is not None,
            phone_listed=phone in listed,
            email_listed=email in listed,
            number_marked=phone in marked,
        )

    async def refused(self, e164: str, reason: str) -> None:
        """A provider refused to text this number (invalid, unreachable): it is not texted again."""
        if await self._store.mark_number(self._subjects.phone(e164), reason):
            self._counted(MarkedBy.REFUSED, reason)

    async def reported(
        self, notification: uuid.UUID, provider: str, *, delivered: bool, code: str | None
    ) -> None:
        """An SMS's final delivery report: counted against its number, which it may mark."""
        report = await self._store.number_report(notification, delivered=delivered)
        if delivered or report is None or report.marked:
            return
        why = self._policy.marks(
            permanent=code is not None and self._permanent(provider, code), streak=report.streak
        )
        if why is None:
            return
        reason = reasons.provider_reason(provider, code or reasons.UNDELIVERED)
        if await self._store.mark_number(report.subject, reason):
            self._counted(why, reason)

    def _counted(self, why: MarkedBy, reason: str) -> None:
        self._metrics.bad_numbers_marked.labels(why.value).inc()
        log.info("number_marked_undeliverable", why=why.value, reason=reason)
