"""Sends due later (``scheduled_sends``), and coalescing: which of them are superseded.

A due send has a kind: ``notification`` (a milestone held by quiet hours, released by
``service.pipeline.release``), or a follow-up of the pickup notice (``pickup_reminder``,
``survey``: ``service.domain.follow_up_plan``, released by ``service.pipeline.follow_up_release``). Coalescing: when a
milestone's notification is released while a later milestone of the same order is sent or on its
way (scheduled too, sent meanwhile, or released in the same run; not one that failed or was
suppressed), only the latest is sent; each earlier one is
recorded ``suppressed_superseded`` with its own receipt, never an SMS. The rule reads ranks only,
so two instances releasing rows of one order at once reach the same verdicts. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.domain.lifecycle import State
from service.domain.milestones import Milestone


class DueKind(StrEnum):
    """What a ``scheduled_sends`` row is (its ``kind``, a CHECK constraint in migration 0019)."""

    NOTIFICATION = "notification"  # a milestone's notification decided inside quiet hours
    # Follow-ups of the pickup notice (``domain.follow_ups``; migration 0022): the same values.
    PICKUP_REMINDER = "pickup_reminder"  # the next pickup reminder of an uncollected bike
    SURVEY = "survey"  # the satisfaction-survey link, some time after pickup


@dataclass(frozen=True, slots=True)
class DueSend:
    """A scheduled send taken (leased) for release, with what the store knows of its notification."""

    schedule_id: uuid.UUID
    notification_id: uuid.UUID
    order_id: str
    waybill: str
    event_id: str
    occurred_at: datetime
    milestone: Milestone
    state: State  # still ``scheduled``, unless it was decided meanwhile (then the row is only dropped)
    releases: int  # takes so far, this one included: more than one means an earlier take never finished
    first_released_at: datetime | None  # when it was first taken: where a provider look-up starts
    latest_rank: int  # the highest milestone rank of the order's notifications sent or on their way

    @property
    def retaken(self) -> bool:
        """An earlier release of it never finished (its taker died): the SMS may be out already."""
        return self.releases > 1


@dataclass(frozen=True, slots=True)
class Pending:
    """A notification of a batch about to be decided, for backlog coalescing."""

    notification_id: uuid.UUID
    order_id: str
    milestone: Milestone
    waited_s: float  # how long its record waited in Kafka before this batch read it
    first_claim: bool = True  # a re-claim may have been sent by the earlier claim: never superseded


def backlog_superseded(pending: Iterable[Pending], after_s: float) -> set[uuid.UUID]:
    """A backlog (records that waited at least ``after_s``, e.g. after an outage): of an order's
    milestones in one batch, the earlier ones a later one supersedes. Fresh records are not
    coalesced (live traffic notifies each milestone), nor re-claims."""
    rows = list(pending)
    latest: dict[str, int] = {}
    for p in rows:
        latest[p.order_id] = max(latest.get(p.order_id, 0), p.milestone.rank)
    return {
        p.notification_id
        for p in rows
        if p.first_claim and p.waited_s >= after_s and p.milestone.rank < latest[p.order_id]
    }


def superseded(due: Iterable[DueSend]) -> set[uuid.UUID]:
    """The notifications among ``due`` that a later milestone of their order supersedes."""
    rows = list(due)
    latest: dict[str, int] = {}
    for d in rows:
        latest[d.order_id] = max(latest.get(d.order_id, 0), d.latest_rank, d.milestone.rank)
    return {d.notification_id for d in rows if d.milestone.rank < latest[d.order_id]}
