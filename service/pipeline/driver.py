"""The async driver of one consumed batch: parse -> plan -> dedup -> render -> send -> record -> receipt.

Everything the batch decides is durable in PostgreSQL before this returns; only then may the
caller commit the batch's offsets. A sent notification is recorded (outcome and receipt, in one
transaction) as soon as its provider accepts it, so a crash can resend at most the sends in
flight, and its receipt published at once (through ``service.report.outbox``, in order with the reports
on it); what did not send is recorded in bulk at the end. A notification no provider could take
(all down) is *held*: not recorded, its claim given back, and its record reported as unfinished,
so the caller commits only before it and reads it again after a pause. Failures of the store or
of the dead-letter topic propagate, so the caller retries the batch instead of committing it.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from service.compose.render import Renderer
from service.contracts import ReceiptV1, canonical_event, parse_event
from service.domain.errors import EventRejected, NotifierError, RenderError, SmsTooLong, StoreUnavailable
from service.domain.lifecycle import DRAINING, HELD_NOTIFICATION, Event, State, decided, transition
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone, milestone_for
from service.domain.model import InboundRecord, ShipmentUpdate, notification_id, receipt_id
from service.domain.outcome import Channel, Claimed, ClaimRequest, OutboxRow, Outcome, SealedContact
from service.domain.phone import normalize_hk_mobile
from service.domain.plan import Verdict, milestone_orders, plan_batch
from service.domain.ports import DeadLetter, DeadLetterSink, EmailMessage, NotificationStore, ReceiptSink
from service.logs import get_logger
from service.metrics import Metrics
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.report.outbox import Outbox
from service.send.engine import DeliveryEngine, DeliveryRequest, SmsContent

log = get_logger(__name__)

REASON_RECONCILED = "found_at_provider_after_restart"

#: The first record of each (topic, partition) whose notification is unfinished (held), if any.
Unfinished = dict[tuple[str, int], int]


def _now() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    def __init__(
        self,
        *,
        store: NotificationStore,
        engine: DeliveryEngine,
        renderer: Renderer,
        receipts: ReceiptSink,
        dead_letters: DeadLetterSink,
        metrics: Metrics,
        send_concurrency: int = 32,
        blind_index: BlindIndex,
        keyring: Keyring | None = None,
        links: LinkSigner | None = None,
        allow_foreign_mobiles: bool = False,
        outbox_lease_s: float = 60.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._engine = engine
        self._keyring = keyring
        self._blind = blind_index
        self._links = links
        self._foreign = allow_foreign_mobiles
        #: Called with every batch of recorded outcomes (the composition root applies held reports).
        self.after_record: Callable[[Sequence[Outcome]], Awaitable[None]] | None = None
        self._renderer = renderer
        #: The one way receipts reach the topic (the delivery reports and the relay use it too).
        self.outbox = Outbox(store, receipts, lease_s=outbox_lease_s)
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._send_slots = asyncio.Semaphore(send_concurrency)
        self._clock = clock
        self._abort = asyncio.Event()  # set when a send could not be recorded: start no more sends

    async def process_batch(self, records: Sequence[InboundRecord]) -> Unfinished:
        started = time.perf_counter()
        m = self._metrics
        m.batch_size.observe(len(records))
        self._abort = asyncio.Event()

        parsed: list[tuple[InboundRecord, ShipmentUpdate]] = []
        dead: list[DeadLetter] = []
        for rec in records:
            try:
                parsed.append((rec, parse_event(rec.value, now=self._clock())))
            except EventRejected as exc:
                dead.append(DeadLetter(rec, exc.reason, exc.detail, type(exc).__name__))
        if dead:
            await self._dead_letters.publish(dead)
            for d in dead:
                m.dead_letters.labels(d.reason).inc()
                m.events.labels("dead_lettered").inc()
                log.warning(
                    "event_dead_lettered",
                    reason=d.reason,
                    detail=d.detail,
                    topic=d.record.topic,
                    partition=d.record.partition,
                    offset=d.record.offset,
                )

        updates = [u for _, u in parsed]
        # Recorded first: each event's place in the input, which the stale rule reads, is fixed
        # before anything of this batch is decided, and kept if the batch is read again.
        reached = [milestone_for(u.tms_status) for u in updates]
        await self._store.record_events(
            [(rec, u, ms.value if ms else None) for (rec, u), ms in zip(parsed, reached, strict=True)]
        )
        plans = plan_batch(updates, await self._store.first_reads(sorted(milestone_orders(updates))))

        requests = [
            self._claim_request(
                p.update,
                p.milestone,
                State.CLAIMED if p.verdict is Verdict.CANDIDATE else State.SUPPRESSED_STALE,
            )
            for p in plans
            if p.milestone is not None and p.verdict in (Verdict.CANDIDATE, Verdict.STALE)
        ]
        granted = {c.notification_id: c for c in await self._store.claim(requests)}
        work = [r for r in requests if r.notification_id in granted]

        ignored = sum(p.verdict is Verdict.NOT_A_MILESTONE for p in plans)
        stale = sum(r.state == State.SUPPRESSED_STALE for r in work)
        m.events.labels("not_a_milestone").inc(ignored)
        m.events.labels("duplicate").inc(len(parsed) - ignored - len(work))
        m.events.labels("stale").inc(stale)
        m.events.labels("new_milestone").inc(len(work) - stale)

        subjects = {
            r.notification_id: {x for x in (r.phone_subject, r.email_subject) if x is not None}
            for r in work
            if r.state == State.CLAIMED
        }
        blocked = await self._store.opted_out(sorted({s for ss in subjects.values() for s in ss}))
        settled = await asyncio.gather(
            *(
                self._settle(
                    r,
                    granted[r.notification_id],
                    bool(subjects.get(r.notification_id, set()) & blocked),
                )
                for r in work
            ),
            return_exceptions=True,  # let every send finish and record before a failure propagates
        )
        failures = [x for x in settled if isinstance(x, BaseException)]
        if failures:
            raise failures[0]
        outcomes = [x for x in settled if not isinstance(x, BaseException)]
        held = [o for o in outcomes if o.outcome == HELD_NOTIFICATION]
        await self.record([o for o in outcomes if o.outcome not in (State.SENT, HELD_NOTIFICATION)])
        unfinished = await self._hold(held, {u.event_id: rec for rec, u in parsed})

        by_event = {u.event_id: rec.timestamp_ms for rec, u in parsed}
        for o in outcomes:
            ts = by_event.get(o.update.event_id)
            if ts and o.outcome != HELD_NOTIFICATION:
                m.end_to_end.observe(max(0.0, o.decided_at.timestamp() - ts / 1000))
        m.batch_seconds.observe(time.perf_counter() - started)
        if records:
            log.info(
                "batch_done",
                records=len(records),
                dead_lettered=len(dead),
                notified=len(work) - len(held),
                held=len(held),
                seconds=round(time.perf_counter() - started, 4),
            )
        return unfinished

    async def process_one_by_one(self, records: Sequence[InboundRecord], *, attempts: int) -> Unfinished:
        """A batch failed ``attempts`` times while the database answers: find the poison.

        Each record is processed alone; one that still fails, with the database up, goes to the
        dead-letter topic (reason ``processing_failed``) and its partition moves on. A failure
        while the database is down propagates: that is an outage, not poison.
        """
        unfinished: Unfinished = {}
        dead: list[DeadLetter] = []
        for rec in records:
            if (rec.topic, rec.partition) in unfinished:
                continue  # behind a held record: read again with it
            try:
                unfinished.update(await self.process_batch([rec]))
            except Exception as exc:  # any failure of one record alone may be poison
                if not await self._store.ping():
                    raise
                kind = type(exc).__name__  # the class only: a message may quote the event
                dead.append(
                    DeadLetter(
                        rec, "processing_failed", f"failed {attempts + 1} times: {kind}", kind, attempts + 1
                    )
                )
        if dead:
            await self._dead_letters.publish(dead)
            self._metrics.dead_letters.labels("processing_failed").inc(len(dead))
            self._metrics.events.labels("dead_lettered").inc(len(dead))
            for d in dead:
                log.error(
                    "event_dead_lettered",
                    reason=d.reason,
                    detail=d.detail,
                    topic=d.record.topic,
                    partition=d.record.partition,
                    offset=d.record.offset,
                )
        return unfinished

    async def _settle(self, req: ClaimRequest, claim: Claimed, opted_out: bool) -> Outcome:
        """Decide one notification; a send is recorded at once, so a crash cannot lose track of it,
        and its receipt published at once, so it reaches the topic before any report on it."""
        o = await self._decide(req, claim, opted_out)
        transition(State.CLAIMED, decided(o.outcome, o.channel))  # an illegal outcome raises here
        if o.outcome == State.SENT:
            try:
                await self.outbox.record([o], [receipt_row(o)], [c for c in (self._seal(o),) if c])
            except NotifierError:
                # The database is gone: sends that begin now could not be recorded either.
                self._abort.set()
                raise
            self._metrics.notifications.labels(o.outcome, o.channel).inc()
            if self.after_record is not None:
                await self.after_record([o])  # a report that overtook the send applies now
        return o

    async def _hold(self, held: Sequence[Outcome], records: dict[str, InboundRecord]) -> Unfinished:
        """Give back the claims of held notifications; returns where each partition must be read again."""
        if not held:
            return {}
        await self._store.release([o.notification_id for o in held if not o.maybe_sent])
        # Held for a drain (shutdown, rebalance) is not news; held because no provider took it is.
        self._metrics.held.inc(sum(o.reason != DRAINING for o in held))
        unfinished: Unfinished = {}
        for o in held:
            rec = records[o.update.event_id]
            key = (rec.topic, rec.partition)
            unfinished[key] = min(unfinished.get(key, rec.offset), rec.offset)
        if any(o.reason != DRAINING for o in held):
            log.warning("notifications_held", count=len(held), reason=held[0].reason)
        return unfinished

    async def record(
        self, outcomes: Sequence[Outcome], contacts: Sequence[SealedContact | None] = ()
    ) -> None:
        """Make outcomes durable with their receipts (one transaction), then publish the receipts."""
        if not outcomes:
            return
        rows = [receipt_row(o) for o in outcomes]
        await self.outbox.record(outcomes, rows, [c for c in contacts if c is not None])
        for o in outcomes:
            self._metrics.notifications.labels(o.outcome, o.channel).inc()
        if self.after_record is not None:
            await self.after_record(outcomes)

    def _seal(self, o: Outcome) -> SealedContact | None:
        """Keep the event, encrypted, while an SMS may still be reported undelivered (email fallback):
        the validated event's known fields (its canonical JSON), never the raw bytes, and only for a
        send (not for every event read)."""
        if self._keyring is None or o.outcome != State.SENT:
            return None
        key_id, blob = self._keyring.encrypt(canonical_event(o.update), o.notification_id.bytes)
        return SealedContact(o.notification_id, key_id, blob)

    def _claim_request(self, update: ShipmentUpdate, milestone: Milestone, state: State) -> ClaimRequest:
        nid = notification_id(update.order_id, milestone)
        phone, email = self._subjects(update)
        link = self._links.link_id(nid) if self._links else None
        return ClaimRequest(nid, update, milestone, state, link, phone, email)

    def _subjects(self, update: ShipmentUpdate) -> tuple[bytes | None, bytes | None]:
        """Blind indexes of the recipient's phone and email: consent look-ups, erasure, support."""
        r = update.recipient
        e164 = normalize_hk_mobile(r.phone, allow_foreign_mobiles=self._foreign).e164 if r.phone else None
        return (self._blind.phone(e164) if e164 else None, self._blind.email(r.email) if r.email else None)

    async def _decide(self, req: ClaimRequest, claim: Claimed, opted_out: bool) -> Outcome:
        if req.state == State.SUPPRESSED_STALE:
            return Outcome(
                req.notification_id,
                req.update,
                req.milestone,
                State.SUPPRESSED_STALE,
                "none",
                self._clock(),
                reason="later_milestone_already_reached",
            )
        if claim.claims <= 1:
            return await self.deliver(req.notification_id, req.update, req.milestone, opted_out=opted_out)
        # An earlier claim never recorded its outcome (a crash mid-send): the SMS may be out already.
        transition(State.CLAIMED, Event.RECLAIM)
        # The engine asks the SMS providers first and takes a send they hold as the send. A new send
        # is counted as a possible duplicate only when an earlier one cannot be ruled out: a
        # provider could not answer, or an earlier claim began an email (email has no look-up).
        o = await self.deliver(
            req.notification_id,
            req.update,
            req.milestone,
            opted_out=opted_out,
            reconcile_since=claim.first_claimed_at or self._clock(),
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

    def _sms(
        self, milestone: Milestone, update: ShipmentUpdate, locale: str, at: datetime | None
    ) -> SmsContent | None:
        """The SMS, shortened to the segment cap if need be; None when even shortened it is over."""
        try:
            msg = self._renderer.render_sms(milestone, update, locale, at=at)
        except SmsTooLong:
            self._metrics.sms_shortened.labels("too_long").inc()
            return None
        for cut in msg.shortened:
            self._metrics.sms_shortened.labels(cut).inc()
        return SmsContent(msg.body, msg.segments, msg.encoding)

    async def deliver(
        self,
        notification: uuid.UUID,
        update: ShipmentUpdate,
        milestone: Milestone,
        *,
        email_only: bool = False,
        opted_out: bool | None = None,
        reconcile_since: datetime | None = None,
    ) -> Outcome:
        """Render and send one notification through the engine's plan; the outcome is not yet recorded.

        ``opted_out`` is the recipient's consent if the caller looked it up (in bulk); None: look it up.
        """

        def outcome(kind: str, channel: Channel = "none", **kw: object) -> Outcome:
            return Outcome(
                notification_id=notification,
                update=update,
                milestone=milestone,
                outcome=kind,
                channel=channel,
                decided_at=self._clock(),
                **kw,  # type: ignore[arg-type]
            )

        if opted_out is None:
            opted_out = bool(
                await self._store.opted_out([x for x in self._subjects(update) if x is not None])
            )
        if opted_out:
            return outcome(State.SUPPRESSED_OPTED_OUT, reason="opted_out")
        recipient = update.recipient
        phone = (
            normalize_hk_mobile(recipient.phone, allow_foreign_mobiles=self._foreign)
            if recipient.phone and not email_only
            else None
        )
        phone_note = None if phone is None or phone.e164 else f"phone_{phone.reason}"
        locale = self._renderer.choose_locale(recipient.locale)
        sms: SmsContent | None = None
        try:
            if phone is not None and phone.e164:
                sms = self._sms(milestone, update, locale, reconcile_since)
                if sms is None:  # over the segment cap even shortened: the email carries it, else it fails
                    if not recipient.email:
                        return outcome(State.FAILED, locale=locale, reason="sms_too_long")
                    email_only, phone_note = True, "sms_too_long"
            email: Callable[[], EmailMessage] | None = None
            if recipient.email:
                email = functools.partial(
                    self._renderer.render_email, milestone, update, locale, at=reconcile_since
                )
            async with self._send_slots:
                if self._abort.is_set():
                    raise StoreUnavailable("a send of this batch could not be recorded; no more are started")
                result = await self._engine.deliver(
                    DeliveryRequest(
                        notification,
                        phone.e164 if phone else None,
                        recipient.email,
                        sms,
                        email,
                        skip_sms=email_only,
                        reconcile_since=reconcile_since,
                        before_email=functools.partial(self._store.note_email_attempt, notification),
                    )
                )
        except RenderError as exc:
            log.error("render_failed", notification_id=str(notification), error=str(exc))
            return outcome(State.FAILED, locale=locale, reason="render_error")
        if result.outcome == State.SUPPRESSED_OPTED_OUT and phone is not None and phone.e164:
            # The provider says the recipient opted out with it (e.g. replied STOP): honour it everywhere.
            await self._store.set_consent(
                [self._blind.phone(phone.e164)], opted_out=True, source=f"provider:{result.provider}"
            )
        if result.outcome == State.SENT and result.channel == "sms" and sms is not None:
            self._metrics.sms_segments.labels(result.provider or "", sms.encoding).inc(sms.segments)
        if result.outcome not in (State.SENT, HELD_NOTIFICATION):
            log.warning(
                "notification_not_sent",
                notification_id=str(notification),
                outcome=result.outcome,
                reason=result.reason,
            )
        return outcome(
            result.outcome,
            result.channel,  # type: ignore[arg-type]  # the engine's channel names are Channel values
            provider=result.provider,
            provider_message_id=result.provider_message_id,
            locale=locale,
            sms_encoding=result.sms_encoding,
            sms_segments=result.sms_segments,
            reason=phone_note
            or (result.reason if result.outcome != State.SENT else None)
            or (REASON_RECONCILED if result.reconciled else None),
            reference=result.reference,
            maybe_sent=result.maybe_sent,
            earlier_unchecked=result.earlier_unchecked,
        )


def receipt_row(o: Outcome) -> OutboxRow:
    """The receipt of an outcome, ready for the outbox. Ids, codes and counts only: no personal data."""
    rid = receipt_id(o.notification_id, o.outcome, o.channel, o.provider)
    receipt = ReceiptV1(
        receipt_id=rid,
        notification_id=o.notification_id,
        order_id=o.update.order_id,
        waybill=o.update.waybill,
        milestone=o.milestone.value,
        event_id=o.update.event_id,
        outcome=o.outcome,
        channel=o.channel,
        provider=o.provider,
        provider_message_id=o.provider_message_id,
        locale=o.locale,
        sms_encoding=o.sms_encoding,
        sms_segments=o.sms_segments,
        reason=o.reason,
        occurred_at=o.update.occurred_at,
        decided_at=o.decided_at,
    )
    return OutboxRow(rid, o.notification_id, o.update.order_id, receipt.to_bytes())
