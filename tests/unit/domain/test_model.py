"""The ids the service derives: they are stored and published, so they never change between releases."""

from __future__ import annotations

import uuid

from service.domain.milestones import Milestone
from service.domain.model import notification_id, receipt_id

NOTIFICATION = uuid.UUID("39d5f082-3aa2-500f-91c9-a8b4bacba15a")


def test_a_notification_id_is_stable() -> None:
    assert notification_id("SO-HK-24001", Milestone.READY_FOR_PICKUP) == NOTIFICATION


def test_a_receipt_id_is_stable() -> None:
    assert receipt_id(NOTIFICATION, "sent", "sms", "twilio") == uuid.UUID(
        "3debcb97-e219-597a-a264-5044910d0837"
    )
    assert receipt_id(NOTIFICATION, "suppressed_stale") == uuid.UUID("7f8caff3-c948-52b6-a5a1-2352c08e17db")


def test_a_receipt_without_a_channel_or_provider_is_on_channel_none() -> None:
    assert receipt_id(NOTIFICATION, "failed") == receipt_id(NOTIFICATION, "failed", "none", None)
    assert receipt_id(NOTIFICATION, "failed", "none", None) == receipt_id(NOTIFICATION, "failed", "none", "")
    assert receipt_id(NOTIFICATION, "sent", "sms", "twilio") != receipt_id(
        NOTIFICATION, "sent", "sms", "infobip"
    )
