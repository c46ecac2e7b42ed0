"""The store's events and claims on PostgreSQL: events recorded as read (their places), claims of
(order, milestone), and the outcomes that finish them with their receipts and sealed contacts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from service.domain.lifecycle import State
from service.domain.milestones import PICKED_UP_STATUS, Milestone
from service.domain.model import InboundRecord, ShipmentUpdate
from service.domain.outcome import Claimed, ClaimRequest, Lease, OutboxRow, Outcome, SealedContact
from service.store.base import PostgresBase, translated
from service.store.receipt_outbox import OUTBOX_INSERT
from service.store.scheduled_sends import schedule_in

# In the batch's order (the ORDER BY), so that places (read_seq) follow it; a row already there
# keeps its first place.
_RECORD_EVENTS = """
INSERT INTO shipment_events
    (event_id, order_id, tms_status, milestone, occurred_at, source_topic, source_partition, source_offset)
SELECT event_id, order_id, tms_status, milestone, occurred_at, topic, part, "offset"
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::int[], $8::bigint[])
    WITH ORDINALITY AS t(event_id, order_id, tms_status, milestone, occurred_at, topic, part, "offset", n)
ORDER BY n
ON CONFLICT (event_id) DO NOTHING
"""

# The place of each (order, milestone): its first recorded event's (0 without one: recorded
# before places existed, or a notification whose event is no longer recorded). Index scans on
# shipment_events (order_id), notifications (order_id, milestone) and shipment_events' key.
_FIRST_READS = """
SELECT order_id, milestone, min(place) AS place FROM (
    SELECT order_id, milestone, coalesce(read_seq, 0) AS place FROM shipment_events
    WHERE order_id = ANY($1::text[]) AND milestone IS NOT NULL
    UNION ALL
    SELECT n.order_id, n.milestone, 0 FROM notifications n
    WHERE n.order_id = ANY($1::text[])
        AND NOT EXISTS (SELECT 1 FROM shipment_events e WHERE e.event_id = n.event_id)
) AS reads GROUP BY order_id, milestone
"""

# The place of each order's first collection event (TMS status PICKED_UP, recorded with no milestone).
_FIRST_COLLECTIONS = """
SELECT order_id, min(coalesce(read_seq, 0)) AS place FROM shipment_events
WHERE order_id = ANY($1::text[]) AND milestone IS NULL AND upper(btrim(tms_status)) = $2
GROUP BY order_id
"""

# A new (order, milestone) is inserted; one whose earlier claim never finished (a crash mid-send)
# is claimed again and counted, whatever this event's verdict (a stale verdict then settles it);
# one that reached an outcome is a duplicate and returns nothing. Every row starts 'claimed', a
# stale one too: its final state is written by ``finish`` with its receipt, in one transaction, so
# a crash in between leaves a claim to settle, never a decision without a receipt.
_CLAIM = f"""
INSERT INTO notifications
    (id, order_id, waybill, milestone, milestone_rank, event_id, event_occurred_at, state,
     link_id, phone_subject, email_subject)
SELECT id, order_id, waybill, milestone, rank, event_id, occurred_at, '{State.CLAIMED}', link_id, phone, email
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::text[], $7::timestamptz[],
            $8::bytea[], $9::bytea[], $10::bytea[])
    AS t(id, order_id, waybill, milestone, rank, event_id, occurred_at, link_id, phone, email)
ON CONFLICT (order_id, milestone) DO UPDATE
    SET claims = notifications.claims + 1, updated_at = now()
    WHERE notifications.state = '{State.CLAIMED}'
RETURNING id, claims, created_at, email_attempted_at IS NOT NULL AS email_attempted
"""  # noqa: S608

_EMAIL_ATTEMPT = """
UPDATE notifications SET email_attempted_at = now()
WHERE id = $1 AND email_attempted_at IS NULL
"""

# A held notification gives its claim back: the next claim of it is not a crash's re-claim.
_RELEASE = f"""
UPDATE notifications SET claims = claims - 1, updated_at = now()
WHERE id = ANY($1::uuid[]) AND state = '{State.CLAIMED}' AND claims > 0
"""  # noqa: S608

_FINISH = """
UPDATE notifications AS n SET
    state = u.state, channel = u.channel, provider = u.provider, provider_message_id = u.provider_message_id,
    locale = u.locale, sms_encoding = u.sms_encoding, sms_segments = u.sms_segments, reason = u.reason,
    reference = u.reference, fallback_due_at = NULL, updated_at = now(),
    consent_state = coalesce(u.consent_state, n.consent_state),
    consent_source = CASE WHEN u.consent_state IS NULL THEN n.consent_source ELSE u.consent_source END,
    consent_set_at = CASE WHEN u.consent_state IS NULL THEN n.consent_set_at ELSE u.consent_set_at END
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[],
            $10::text[], $11::text[], $12::text[], $13::timestamptz[])
    AS u(id, state, channel, provider, provider_message_id, locale, sms_encoding, sms_segments, reason, reference,
         consent_state, consent_source, consent_set_at)
WHERE n.id = u.id
"""

_CONTACTS_INSERT = """
INSERT INTO notification_contacts (notification_id, key_id, ciphertext)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])
ON CONFLICT (notification_id) DO NOTHING
"""


class EventsAndClaims(PostgresBase):
    """``shipment_events`` and the claims and outcomes of ``notifications``."""

    async def record_events(self, events: Sequence[tuple[InboundRecord, ShipmentUpdate, str | None]]) -> None:
        if not events:
            return
        cols: list[list[object]] = [[] for _ in range(8)]
        for rec, u, milestone in events:
            for col, v in zip(
                cols,
                (
                    u.event_id,
                    u.order_id,
                    u.tms_status,
                    milestone,
                    u.occurred_at,
                    rec.topic,
                    rec.partition,
                    rec.offset,
                ),
                strict=True,
            ):
                col.append(v)
        async with translated():
            await self._pool.execute(_RECORD_EVENTS, *cols)

    async def first_reads(self, order_ids: Sequence[str]) -> dict[tuple[str, Milestone], int]:
        """Where each (order, milestone) of these orders was first read: the stale rule's input."""
        if not order_ids:
            return {}
        async with translated():
            rows = await self._pool.fetch(_FIRST_READS, list(order_ids))
        return {(r["order_id"], Milestone(r["milestone"])): int(r["place"]) for r in rows}

    async def first_collections(self, order_ids: Sequence[str]) -> dict[str, int]:
        if not order_ids:
            return {}
        async with translated():
            rows = await self._pool.fetch(_FIRST_COLLECTIONS, list(order_ids), PICKED_UP_STATUS)
        return {r["order_id"]: int(r["place"]) for r in rows}

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claimed]:
        """Claim notifications; returns only the claims granted (new, or re-claimed after a crash)."""
        if not requests:
            return []
        args = (
            [r.notification_id for r in requests],
            [r.update.order_id for r in requests],
            [r.update.waybill for r in requests],
            [r.milestone.value for r in requests],
            [r.milestone.rank for r in requests],
            [r.update.event_id for r in requests],
            [r.update.occurred_at for r in requests],
            [r.link_id for r in requests],
            [r.phone_subject for r in requests],
            [r.email_subject for r in requests],
        )
        async with translated():
            rows = await self._pool.fetch(_CLAIM, *args)
        return [Claimed(r["id"], int(r["claims"]), r["created_at"], r["email_attempted"]) for r in rows]

    async def note_email_attempt(self, notification: uuid.UUID) -> None:
        """Mark that an email of this notification may go out (before the first email request)."""
        async with translated():
            await self._pool.execute(_EMAIL_ATTEMPT, notification)

    async def release(self, notifications: Sequence[uuid.UUID]) -> None:
        """Give back claims of notifications held before anything was sent (see ``_RELEASE``)."""
        if notifications:
            async with translated():
                await self._pool.execute(_RELEASE, list(notifications))

    async def finish(
        self,
        outcomes: Sequence[Outcome],
        receipts: Sequence[OutboxRow],
        contacts: Sequence[SealedContact] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """Record outcomes, their receipts (the outbox, born leased to ``lease``) and sealed contacts
        in one transaction."""
        if not outcomes:
            return
        state_args = (
            [o.notification_id for o in outcomes],
            [o.outcome for o in outcomes],
            [o.channel for o in outcomes],
            [o.provider for o in outcomes],
            [o.provider_message_id for o in outcomes],
            [o.locale for o in outcomes],
            [o.sms_encoding for o in outcomes],
            [o.sms_segments for o in outcomes],
            [o.reason for o in outcomes],
            [o.reference for o in outcomes],
            # the consent each decision applied (None: keep what the row has)
            [o.consent.state.value if o.consent else None for o in outcomes],
            [o.consent.source if o.consent else None for o in outcomes],
            [o.consent.set_at if o.consent else None for o in outcomes],
        )
        outbox_args = (
            [r.receipt_id for r in receipts],
            [r.notification_id for r in receipts],
            [r.order_id for r in receipts],
            [r.payload for r in receipts],
            lease.owner if lease else None,
            lease.seconds if lease else 0.0,
        )
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_FINISH, *state_args)
            await conn.execute(OUTBOX_INSERT, *outbox_args)
            if contacts:
                await conn.execute(
                    _CONTACTS_INSERT,
                    [c.notification_id for c in contacts],
                    [c.key_id for c in contacts],
                    [c.ciphertext for c in contacts],
                )
            if any(o.outcome == State.SCHEDULED for o in outcomes):  # quiet hours: due at the window's end
                await schedule_in(conn, outcomes)
