"""Dispatch one claimed notification: decide it (stale, re-claimed after a crash, or new), send it
(``service.send.sender``), and record a send at once with its receipt, so a crash cannot lose track
of it and its receipt reaches the topic before any report on it; a report that overtook the send
is applied right after (``service.report.delivery_reports``, which records every decided notification)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from service.contracts import canonical_event
from service.domain import reasons
from service.domain.consent_snapshot import ConsentSnapshot
from service.domain.errors import NotifierError
from service.domain.lifecycle import Event, State, decided, transition
from service.domain.outcome import Claimed, ClaimRequest, Outcome, SealedContact
from service.domain.quiet_hours import QuietHours
from service.domain.screening import Screen
from service.logs import get_logger
from service.metrics import Metrics
from service.privacy.crypto import Keyring
from service.report.delivery_reports import DeliveryReports
from service.send.sender import REASON_RECONCILED, Sender

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        sender: Sender,
        reports: DeliveryReports,
        metrics: Metrics,
        clock: Callable[[], datetime],
        keyring: Keyring | None = None,
        quiet: QuietHours | None = None,
    ) -> None:
        self._quiet = quiet or QuietHours()
        self._sender = sender
        self._reports = reports
        self._metrics = metrics
        self._clock = clock
        self._keyring = keyring

    async def settle(
        self,
        req: ClaimRequest,
        claim: Claimed,
        *,
        consent: ConsentSnapshot,
        abort: asyncio.Event,
        superseded: bool = False,  # a backlog: a later milestone of its order is in the batch
        screen: Screen | None = None,  # the recipient lists' word, looked up for the batch
    ) -> Outcome:
        """Decide one notification; a send is recorded (and its receipt published) before this returns,
        and before its send slot is released. If it cannot be, ``abort`` is set, so the batch starts
        no more sends, and the failure propagates."""

        async def record_send(o: Outcome) -> None:
            transition(State.CLAIMED, decided(o.outcome, o.channel))
            try:  # then a report that overtook the send applies
                await self._reports.record([o], [c for c in (self._seal(o),) if c])
            except NotifierError:
                # The database is gone: sends that begin now could not be recorded either.
                abort.set()
                raise
            self._metrics.decisions.labels(o.outcome).inc()

        o = await self._decide(req, claim, consent, abort, record_send, superseded=superseded, screen=screen)
        transition(State.CLAIMED, decided(o.outcome, o.channel))  # an illegal outcome raises here
        return o

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Record outcomes that sent nothing (suppressed, failed, scheduled) with their receipts; a
        scheduled one with its sealed event (it is rendered at its release)."""
        await self._reports.record(outcomes, [c for c in map(self._seal, outcomes) if c])
        for o in outcomes:  # once recorded: each claimed notification's one decision
            self._metrics.decisions.labels(o.outcome).inc()

    def _seal(self, o: Outcome) -> SealedContact | None:
        """Keep the event, encrypted, while an SMS may still be reported undelivered (email fallback):
        the validated event's known fields (its canonical JSON), never the raw bytes, and only for a
        send (not for every event read)."""
        if self._keyring is None or o.outcome not in (State.SENT, State.SCHEDULED):
            return None
        key_id, blob = self._keyring.encrypt(canonical_event(o.update), o.notification_id.bytes)
        return SealedContact(o.notification_id, key_id, blob)

    def _scheduled(self, req: ClaimRequest, claim: Claimed, consent: ConsentSnapshot) -> Outcome | None:
        """Quiet hours: the ``scheduled`` outcome of a notification that may not go now, else None.

        An opted-out recipient is suppressed now, not scheduled. A re-claim (an earlier claim never
        finished) is scheduled only when its first claim fell in this same window, so it cannot
        have been sent; else it takes the re-claim path at once (the providers are asked first)."""
        now = self._clock()
        release_at = self._quiet.release_at(req.milestone, now)
        if release_at is None or consent.opted_out or self._keyring is None:
            return None
        if claim.claims > 1 and (
            claim.first_claimed_at is None
            or self._quiet.release_at(req.milestone, claim.first_claimed_at) != release_at
        ):
            return None
        return Outcome(
            req.notification_id,
            req.update,
            req.milestone,
            State.SCHEDULED,
            "none",
            now,
            reason=reasons.QUIET_HOURS,
            scheduled_for=release_at,
            consent=consent,
        )

    async def _decide(
        self,
        req: ClaimRequest,
        claim: Claimed,
        consent: ConsentSnapshot,
        abort: asyncio.Event,
        record: Callable[[Outcome], Awaitable[None]],
        *,
        superseded: bool = False,
        screen: Screen | None = None,
    ) -> Outcome:
        if superseded and req.state != State.SUPPRESSED_STALE:
            return Outcome(
                req.notification_id,
                req.update,
                req.milestone,
                State.SUPPRESSED_SUPERSEDED,
                "none",
                self._clock(),
                reason=reasons.SUPERSEDED,
                consent=consent,
            )
        if req.state == State.SUPPRESSED_STALE:
            return Outcome(
                req.notification_id,
                req.update,
                req.milestone,
                State.SUPPRESSED_STALE,
                "none",
                self._clock(),
                reason=reasons.STALE,
                consent=consent,
            )
        later = self._scheduled(req, claim, consent)
        if later is not None:
            return later
        if claim.claims <= 1:
            return await self._sender.deliver(
                req.notification_id,
                req.update,
                req.milestone,
                consent=consent,
                screen=screen,
                abort=abort,
                record=record,
            )
        # An earlier claim never recorded its outcome (a crash mid-send): the SMS may be out already.
        transition(State.CLAIMED, Event.RECLAIM)
        # The engine asks the SMS providers first and takes a send they hold as the send. A new send
        # is counted as a possible duplicate only when an earlier one cannot be ruled out: a
        # provider could not answer, or an earlier claim began an email (email has no look-up).
        o = await self._sender.deliver(
            req.notification_id,
            req.update,
            req.milestone,
            consent=consent,
            screen=screen,
            reconcile_since=claim.first_claimed_at or self._clock(),
            abort=abort,
            record=record,
        )
        sent_again = o.outcome == State.SENT and o.reason != REASON_RECONCILED
        resent = sent_again and (o.earlier_unchecked or claim.email_attempted)
        if resent:
            self._metrics.possible_duplicates.inc()
        log.warning(
            "notification_reclaimed",
            notification_id=str(req.notification_id),
            claims=claim.claims,
            outcome=o.outcome,
            sent_again=sent_again,
            resent=resent,  # a possible duplicate: an earlier send could not be ruled out
        )
        return o
