"""The ports the pipeline talks through. Real adapters live beside the package; fakes in ``service.testing``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.domain.consent_snapshot import ConsentRecord
from service.domain.due_sends import DueKind, DueSend
from service.domain.dwell import Dwell, PickupTime
from service.domain.follow_up_plan import DueFollowUp, FollowUpRef
from service.domain.follow_ups import FollowUp
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, Partition, ShipmentUpdate
from service.domain.outcome import (
    Claimed,
    ClaimRequest,
    DeliveryTarget,
    HeldReport,
    Lease,
    OutboxRow,
    Outcome,
    SealedContact,
)
from service.domain.screening import NumberMark, NumberReport
from service.domain.status_check import Answer, AwaitingStatus


@dataclass(frozen=True, slots=True)
class SendAccepted:
    """A provider took a message: its id at the provider and the status it reported."""

    provider: str
    message_id: str
    status: str


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """What a provider says now of a message it took (a status look-up, when no callback came)."""

    answer: Answer  # delivered, undelivered or pending (a look-up that fails raises instead)
    code: str | None = None  # the provider's error code of an undelivered message


class SmsSender(Protocol):
    """An SMS provider client. Raises a ``ProviderError`` subclass when the message is not accepted.

    ``reference`` is our opaque id of this attempt (ASCII, at most 64 characters): the client
    sends it where the provider echoes it back in delivery callbacks (Twilio: a ``ref`` query
    parameter on the StatusCallback URL; Infobip: ``messageId`` and ``callbackData``).
    """

    name: str

    async def send_sms(self, to_e164: str, body: str, *, reference: str) -> SendAccepted: ...

    async def find_sent(
        self, to_e164: str, body: str, *, reference: str, since: datetime
    ) -> SendAccepted | None:
        """After an ambiguous failure: the message this attempt created, if the provider has it."""
        ...

    async def delivery_status(self, message_id: str | None, *, reference: str) -> DeliveryStatus | None:
        """The current status of a message this provider took (its id, and our reference of the
        attempt); None when the provider does not list it."""
        ...


@dataclass(frozen=True, slots=True)
class EmailMessage:
    subject: str
    text: str
    html: str


class EmailSender(Protocol):
    """An email provider client; ``reference`` travels in the provider's custom arguments."""

    name: str

    async def send_email(self, to: str, message: EmailMessage, *, reference: str) -> SendAccepted: ...


class NotificationStore(Protocol):
    """Durable dedup state and history. Raises ``StoreUnavailable`` when it cannot answer."""

    async def record_events(self, events: Sequence[tuple[InboundRecord, ShipmentUpdate, str | None]]) -> None:
        """Record events as read, in this order; an event already recorded keeps its first place."""

    async def first_reads(self, order_ids: Sequence[str]) -> dict[tuple[str, Milestone], int]:
        """The place in the input of each recorded (order, milestone) of these orders (``domain.plan``)."""
        ...

    async def first_collections(self, order_ids: Sequence[str]) -> dict[str, int]:
        """The place in the input of each of these orders' first collection event (``PICKED_UP``),
        for the stale rule: a milestone read after its order's bike was collected is stale."""
        ...

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claimed]: ...

    async def release(self, notifications: Sequence[uuid.UUID]) -> None:
        """Give back claims taken for notifications that were held, not sent."""

    async def note_email_attempt(self, notification: uuid.UUID) -> None:
        """Remember, before its first email request, that this notification may have been emailed."""

    async def finish(
        self,
        outcomes: Sequence[Outcome],
        receipts: Sequence[OutboxRow],
        contacts: Sequence[SealedContact] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """Record outcomes with their receipts; the receipts are born leased to ``lease`` (None: free)."""

    async def delivery_target(self, notification: uuid.UUID) -> DeliveryTarget | None: ...

    async def contact(self, notification: uuid.UUID) -> SealedContact | None: ...

    async def opted_out(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these blind indexes (phone or email) have opted out."""
        ...

    async def consent_records(self, subjects: Sequence[bytes]) -> dict[bytes, ConsentRecord]:
        """Each of these blind indexes' record: its opt-out, else its latest opt-in (none: no record)."""
        ...

    async def set_consent(
        self, subjects: Sequence[bytes], *, opted_out: bool, source: str, order_id: str | None = None
    ) -> int:
        """Record the change with its history; ``order_id``: the order it was made from, for the audit log."""
        ...

    async def hold_report(self, reference: str, provider: str, delivered: bool, code: str | None) -> None: ...

    async def take_reports(self, references: Sequence[str]) -> list[HeldReport]: ...

    async def record_delivery(
        self,
        notification: uuid.UUID,
        reference: str,
        state: State,
        reason: str | None,
        receipt: OutboxRow,
        *,
        fallback_in_s: float | None = None,
        lease: Lease | None = None,
    ) -> bool:
        """Apply a provider's report to the attempt it names; False when stale or repeated.

        ``fallback_in_s``: the report owes an email fallback, due for the retry job in that many seconds.
        ``lease``: the receipt is born leased to it, as in ``finish``.
        """
        ...

    async def due_fallbacks(self, limit: int, lease_s: float) -> list[DeliveryTarget]:
        """Owed email fallbacks that are due, each leased to the caller for ``lease_s``."""
        ...

    async def fallback_later(self, notification: uuid.UUID, after_s: float | None) -> None:
        """Retry an owed fallback in ``after_s`` seconds; None: it is no longer owed."""

    async def due_status_checks(self, limit: int, lease_s: float, after_s: float) -> list[AwaitingStatus]:
        """SMS sends with no final status whose status look-up is due (first ``after_s`` after the
        send), each leased to the caller for ``lease_s`` and its look counted."""
        ...

    async def status_check_later(self, notification: uuid.UUID, after_s: float) -> None:
        """Look up this send's status again in ``after_s`` seconds (if it is still without one)."""

    async def status_given_up(self, notification: uuid.UUID) -> None:
        """No more look-ups for this send: its provider never gave a final status."""

    async def take_receipts(
        self, lease: Lease, notifications: Sequence[uuid.UUID] | None = None, limit: int = 200
    ) -> list[OutboxRow]:
        """Lease the receipts that may be published now, in the order to publish them.

        A notification's unpublished rows are taken all together, in the order they were written,
        and only when the first of them (its head) is free or already the taker's: a row is born
        leased to its writer, so nobody else takes it until that lease ends; the rows behind the
        head go with it, whoever wrote them. ``notifications``: only theirs; None: any
        notification's (the relay), at most ``limit`` notifications.
        """
        ...

    async def complete_receipts(self, lease: Lease, published: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Mark rows this lease published; returns the rows of their notifications written since
        (whose writers had to wait for these), now leased to it: to publish next, in order."""
        ...

    async def release_receipts(self, lease: Lease, receipt_ids: Sequence[uuid.UUID]) -> None:
        """Give back rows this lease could not publish: the relay takes them."""

    async def unpublished_receipts(self, limit: int = 1000) -> list[OutboxRow]:
        """Receipts not yet on the topic, in the order they were written (for inspection)."""
        ...

    async def ping(self) -> bool:
        """Whether the database answers now."""
        ...

    # --- the recipient lists (migration 0017): pilot mode's allow-list, numbers marked bad -------
    async def pilot_listed(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these blind indexes (phone or email) are on the pilot's allow-list."""
        ...

    async def set_pilot(self, subject: bytes, kind: str, *, listed: bool, source: str) -> bool:
        """Add a contact to the allow-list (or remove it), with its history; False: it was so already."""
        ...

    async def pilot_size(self) -> dict[str, int]:
        """How many phones and emails the allow-list holds."""
        ...

    async def marked_numbers(self, subjects: Sequence[bytes]) -> set[bytes]:
        """Which of these phones' blind indexes are marked undeliverable."""
        ...

    async def mark_number(self, subject: bytes, reason: str) -> bool:
        """Mark a number undeliverable; False when it was marked already."""
        ...

    async def unmark_number(self, subject: bytes) -> bool:
        """Take a number's mark off (an operator's word that it works again); False: it was not marked."""
        ...

    async def number_report(self, notification: uuid.UUID, *, delivered: bool) -> NumberReport | None:
        """Count an SMS's delivery report against its number's undelivered streak (delivered ends it)."""
        ...

    async def number_marks(self, subjects: Sequence[bytes]) -> dict[bytes, NumberMark]:
        """The marks of these numbers, by blind index."""
        ...


class ScheduleStore(Protocol):
    """The sends scheduled for later (``service.store.scheduled_sends``; quiet hours). Times are the
    caller's clock. Raises ``StoreUnavailable``."""

    async def take_due(
        self, kind: DueKind, *, now: datetime, limit: int, lease_s: float, rate_per_s: float
    ) -> list[DueSend]:
        """Up to ``limit`` due sends, each leased to the caller for ``lease_s`` (nobody else takes them)."""
        ...

    async def release_later(
        self, schedule_ids: Sequence[uuid.UUID], *, not_before: datetime, given_back: bool
    ) -> None: ...

    async def drop_scheduled(self, schedule_ids: Sequence[uuid.UUID]) -> None: ...

    async def contact(self, notification: uuid.UUID) -> SealedContact | None: ...

    async def planned_releases(
        self, notifications: Sequence[uuid.UUID], *, rate_per_s: float
    ) -> dict[uuid.UUID, datetime]: ...


@dataclass(frozen=True, slots=True)
class Booking:
    """A slot of a provider's group-wide schedule: it starts in ``start_in_s`` seconds, which is
    ``start_at`` by the schedule's clock (``service.domain.group_rate``)."""

    start_in_s: float
    start_at: float


class RateSchedule(Protocol):
    """The group's schedule of each provider's sends (``service.store.rate_schedule``)."""

    async def book(self, provider: str, amount: float, rate_per_s: float, horizon_s: float) -> Booking | None:
        """Book the next ``amount`` segments at ``rate_per_s``; None when the schedule is booked
        more than ``horizon_s`` seconds ahead already. Raises ``StoreUnavailable``."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input message that cannot be processed, with a machine reason and a detail free of personal data."""

    record: InboundRecord
    reason: str
    detail: str
    error_class: str
    attempts: int = 1  # how many times it was tried (parsing fails at once; processing after retries)


class DeadLetterSink(Protocol):
    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Return only once every letter is durably on the dead-letter topic."""


class ReceiptSink(Protocol):
    async def publish(self, receipts: Sequence[OutboxRow]) -> None:
        """Return only once every receipt is acknowledged by the broker."""


#: One fetch: each partition's records, in offset order (a partition that brought none is left out).
Batch = dict[Partition, list[InboundRecord]]


class Consumer(Protocol):
    """A consumer-group member that commits explicit offsets only (the adapter is
    ``service.kafka.consumer.KafkaConsumer``; the fake ``service.testing.FakeConsumer``)."""

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Batch:
        """The next records of the assigned partitions; empty when none came within ``timeout_ms``."""
        ...

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit these next offsets to read. Raises ``CommitRefused`` when a rebalance took the
        partitions away, ``ConsumerUnavailable`` when the broker could not take it."""

    def seek(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` again from ``offset``; ``ConsumerError`` when it is not assigned."""

    def assignment(self) -> set[Partition]:
        """The partitions this member holds now."""
        ...

    def highwater(self, partition: Partition) -> int | None:
        """The partition's end offset as the last fetch saw it; None before any fetch (the adapter's
        fetches run ahead of ``getmany``), ``ConsumerError`` when it is not assigned."""
        ...


class PickupStore(Protocol):
    """Both ends of each order's dwell time (``service.domain.dwell``; ``service.store.dwell_times``).
    Raises ``StoreUnavailable`` when it cannot answer."""

    async def record_pickup_times(self, times: Sequence[PickupTime]) -> list[Dwell]:
        """Record ready and pickup times (each end keeps its earliest); returns the dwells these
        completed, each once however often its events are recorded."""
        ...

    async def picked_up(self, order_ids: Sequence[str]) -> set[str]:
        """Which of these orders' bikes were collected (no pickup reminder after that)."""
        ...


class FollowUpStore(Protocol):
    """The follow-ups of the pickup notice (``service.store.follow_up_sends``): their scheduled sends
    (``scheduled_sends`` rows of their kinds) and what was decided for each. Times are the caller's
    clock. Raises ``StoreUnavailable``."""

    async def schedule_follow_ups(self, due: Sequence[tuple[FollowUp, str, datetime]]) -> int:
        """(kind, order, due from): one row per kind and pickup notice (none without a notice; an
        existing row is kept). Returns how many were written."""
        ...

    async def take_due_follow_ups(
        self, kinds: Sequence[FollowUp], *, now: datetime, limit: int, lease_s: float
    ) -> list[DueFollowUp]:
        """Up to ``limit`` due follow-ups, earliest first, each leased to the caller for ``lease_s``."""
        ...

    async def record_follow_up(
        self,
        outcome: Outcome,
        ref: FollowUpRef,
        receipt: OutboxRow,
        *,
        schedule_id: uuid.UUID,
        next_due: datetime | None,
        lease: Lease,
    ) -> bool:
        """In one transaction: what was decided (once per follow-up: False if it was already), its
        receipt (born leased), and the row moved on to ``next_due`` (None: dropped)."""
        ...

    async def planned_follow_ups(
        self, notifications: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[FollowUp, int, datetime]]]:
        """What is scheduled after these pickup notices: (kind, number, when), soonest first; no
        reminder of a bike collected already."""
        ...

    async def release_later(
        self, schedule_ids: Sequence[uuid.UUID], *, not_before: datetime, given_back: bool
    ) -> None: ...

    async def drop_scheduled(self, schedule_ids: Sequence[uuid.UUID]) -> None: ...

    async def contact(self, notification: uuid.UUID) -> SealedContact | None: ...
