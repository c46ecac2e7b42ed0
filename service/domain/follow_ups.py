"""Messages that follow a pickup notice, not milestones of their own: the pickup reminder
(``service.domain.reminders``) and the satisfaction-survey link (``service.domain.survey``).

Each follows its order's ``ready_for_pickup`` notification: its links (status page, opt-out) are
that notification's, its text comes from that notification's sealed event, and its template is
``sms/<kind>.<locale>.txt.j2`` (with ``email/<kind>.<locale>.subject.j2``), rendered with the
milestone's context plus the variables ``CONTEXT`` names. ``follow_up_id`` is the stable id of one
(a reminder's number counts), for a schedule to dedup by. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from service.domain.milestones import Milestone
from service.domain.model import notification_id


class FollowUp(StrEnum):
    """A kind of message that follows a milestone's; the value names its templates. Stored: never change one."""

    PICKUP_REMINDER = "pickup_reminder"
    SURVEY = "survey"

    @property
    def milestone(self) -> Milestone:
        """The notification it follows (its links, its sealed event)."""
        return Milestone.READY_FOR_PICKUP


#: The variables each kind's templates are given beyond a milestone's context (all must be given).
CONTEXT: Final[Mapping[FollowUp, tuple[str, ...]]] = MappingProxyType(
    {
        FollowUp.PICKUP_REMINDER: ("reminder_number", "days_waiting"),
        FollowUp.SURVEY: ("survey_url",),
    }
)


def follow_up_id(order_id: str, kind: FollowUp, number: int = 1) -> uuid.UUID:
    """The stable id of an order's ``number``-th message of a kind (reminder 1, 2, ...; survey 1)."""
    if number < 1:
        raise ValueError("a follow-up's number starts at 1")
    return uuid.uuid5(notification_id(order_id, kind.milestone), f"{kind.value}\x1f{number}")
