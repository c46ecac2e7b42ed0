"""The batch driver: drives one consumed batch through the stages, and only drives.

    intake (parse, dead-letter)       service.intake.parse, service.intake.dead_letters
    dedup (record, plan, claim)       service.dedup.claims
    compose (consent, message)        service.compose.consent, service.compose.message
    send (engine, providers)          service.send.sender, service.send.engine, service.send.providers
    report (receipts, outbox)         service.report.receipts, service.report.outbox

Each claimed notification is dispatched concurrently (``service.pipeline.dispatch``): a send is
recorded with its receipt as soon as its provider accepts it, so a crash can resend at most the
sends in flight; what did not send is recorded in bulk at the end. Everything the batch decides is
durable in PostgreSQL before this returns; only then may the caller commit the batch's offsets. A
notification no provider could take (all down) is *held*: not recorded, its claim given back, and
its record reported as unfinished, so the caller commits only before it and reads it again after a
pause. Failures of the store or of the dead-letter topic propagate, so the caller retries the batch
instead of committing it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from service.compose.consent import Consent
from service.compose.recipient_checks import RecipientChecks
from service.dedup.claims import Claims, Dedup
from service.dedup.pickup_times import PickupTimes
from service.domain.due_sends import Pending, backlog_superseded
from service.domain.lifecycle import DRAINING, HELD_NOTIFICATION, State
from service.domain.model import InboundRecord
from service.domain.outcome import Outcome
from service.domain.ports import DeadLetter, NotificationStore
from service.intake.dead_letters import DeadLetters
from service.intake.parse import Intake
from service.logs import get_logger
from service.metrics import Metrics
from service.pipeline.dispatch import Dispatcher

log = get_logger(__name__)

#: The first record of each (topic, partition) whose notification is unfinished (held), if any.
Unfinished = dict[tuple[str, int], int]


class BatchDriver:
    def __init__(
        self,
        *,
        intake: Intake,
        dedup: Dedup,
        consent: Consent,
        dispatcher: Dispatcher,
        dead_letters: DeadLetters,
        store: NotificationStore,
        metrics: Metrics,
        pickups: PickupTimes | None = None,  # dwell times; None: not recorded
        coalesce_backlog_after_s: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checks: RecipientChecks | None = None,  # pilot mode's allow-list, numbers marked bad
    ) -> None:
        self._pickups = pickups
        self._coalesce_after_s = coalesce_backlog_after_s
        self._clock = clock
        self._intake = intake
        self._dedup = dedup
        self._consent = consent
        self._dispatcher = dispatcher
        self._dead_letters = dead_letters
        self._store = store
        self._metrics = metrics
        # Set when a send could not be recorded: no batch in flight starts another send. Shared by
        # the batches in flight at once (the consume loop's), so the sends left unrecorded stay
        # within the send slots however many batches run; a new one once none is in flight.
        self._abort = asyncio.Event()
        self._active = 0
        self._checks = checks

    async def process_batch(self, records: Sequence[InboundRecord]) -> Unfinished:
        if self._active == 0:
            self._abort = asyncio.Event()
        abort = self._abort
        self._active += 1
        try:
            return await self._process(records, abort)
        finally:
            self._active -= 1

    async def _process(self, records: Sequence[InboundRecord], abort: asyncio.Event) -> Unfinished:
        started = time.perf_counter()
        m = self._metrics
        m.batch_size.observe(len(records))

        parsed = await self._intake.read(records)
        claims = await self._dedup.claim(parsed)
        if self._pickups is not None:
            await self._pickups.record(parsed)
        consent = await self._consent.snapshots(claims.work)  # one look-up: each decision's snapshot
        read_ms = {u.event_id: rec.timestamp_ms for rec, u in parsed}  # each event's record time
        beaten = self._backlog_superseded(claims, read_ms)
        screens = await self._checks.screens(claims.work) if self._checks is not None else {}
        settled = await asyncio.gather(
            *(
                self._dispatcher.settle(
                    r,
                    claims.granted[r.notification_id],
                    consent=consent[r.notification_id],
                    abort=abort,
                    superseded=r.notification_id in beaten,
                    screen=screens.get(r.notification_id),
                )
                for r in claims.work
            ),
            return_exceptions=True,  # let every send finish and record before a failure propagates
        )
        failures = [x for x in settled if isinstance(x, BaseException)]
        if failures:
            raise failures[0]
        outcomes = [x for x in settled if not isinstance(x, BaseException)]
        held = [o for o in outcomes if o.outcome == HELD_NOTIFICATION]
        await self._dispatcher.record(
            [o for o in outcomes if o.outcome not in (State.SENT, HELD_NOTIFICATION)]
        )
        unfinished = await self._hold(held, {u.event_id: rec for rec, u in parsed})

        for o in outcomes:
            ts = read_ms.get(o.update.event_id)
            if ts and o.outcome != HELD_NOTIFICATION:
                m.end_to_end.observe(max(0.0, o.decided_at.timestamp() - ts / 1000))
        m.batch_seconds.observe(time.perf_counter() - started)
        if records:
            log.info(
                "batch_done",
                records=len(records),
                dead_lettered=len(records) - len(parsed),
                notified=len(claims.work) - len(held),
                held=len(held),
                seconds=round(time.perf_counter() - started, 4),
            )
        return unfinished

    def _backlog_superseded(self, claims: Claims, read_ms: dict[str, int]) -> set[uuid.UUID]:
        """Coalescing of a backlog (``coalesce_backlog_after_s``; None: off): the batch's notifications
        that a later milestone of their order in the same batch supersedes."""
        if self._coalesce_after_s is None:
            return set()
        now_ms = self._clock().timestamp() * 1000
        pending = [
            Pending(
                r.notification_id,
                r.update.order_id,
                r.milestone,
                (now_ms - read_ms.get(r.update.event_id, now_ms)) / 1000,
                first_claim=claims.granted[r.notification_id].claims <= 1,
            )
            for r in claims.work
            if r.state != State.SUPPRESSED_STALE
        ]
        return backlog_superseded(pending, self._coalesce_after_s)

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
        await self._dead_letters.send(dead, poison=True)
        return unfinished

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
