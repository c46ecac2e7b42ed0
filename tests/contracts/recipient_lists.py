"""The recipient lists' part of the ``NotificationStore`` contract (migration 0017): the pilot's
allow-list and the numbers marked undeliverable. Run on ``FakeStore``
(tests/unit/test_recipient_lists_contract.py) and on ``PostgresStore``
(tests/integration/test_recipient_lists_contract.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from service.domain.ports import NotificationStore
from tests.builders import claim
from tests.contracts.store import nid, sent

PHONE_A, PHONE_B, EMAIL_A = b"phone-a" * 4, b"phone-b" * 4, b"email-a" * 4


async def _sms_sent(store: NotificationStore, order: str, phone: bytes | None) -> None:
    """A notification of ``order`` to the number ``phone`` (its blind index), sent by SMS."""
    await store.claim([dataclasses.replace(claim(order), phone_subject=phone)])
    await store.finish([sent(order)], [])


class RecipientListsContract:
    """Subclasses give ``subject``: an empty store."""

    @pytest.fixture
    def subject(self) -> NotificationStore:
        raise NotImplementedError

    async def test_the_allow_list_holds_what_was_added_until_it_is_removed(
        self, subject: NotificationStore
    ) -> None:
        assert await subject.pilot_listed([PHONE_A, EMAIL_A]) == set()
        assert await subject.set_pilot(PHONE_A, "phone", listed=True, source="operator:ops") is True
        assert await subject.set_pilot(PHONE_A, "phone", listed=True, source="operator:ops") is False
        assert await subject.set_pilot(EMAIL_A, "email", listed=True, source="operator:ops") is True
        assert await subject.pilot_listed([PHONE_A, PHONE_B, EMAIL_A]) == {PHONE_A, EMAIL_A}
        assert await subject.pilot_size() == {"phone": 1, "email": 1}
        assert await subject.set_pilot(PHONE_A, "phone", listed=False, source="operator:ops") is True
        assert await subject.set_pilot(PHONE_A, "phone", listed=False, source="operator:ops") is False
        assert await subject.pilot_listed([PHONE_A, EMAIL_A]) == {EMAIL_A}
        assert await subject.pilot_size() == {"phone": 0, "email": 1}
        assert await subject.pilot_listed([]) == set()

    async def test_a_number_is_marked_once_and_its_first_reason_stays(
        self, subject: NotificationStore
    ) -> None:
        assert await subject.marked_numbers([PHONE_A, PHONE_B]) == set()
        assert await subject.mark_number(PHONE_A, "twilio_21211") is True
        assert await subject.mark_number(PHONE_A, "infobip_EC_UNKNOWN_SUBSCRIBER") is False
        assert await subject.marked_numbers([PHONE_A, PHONE_B]) == {PHONE_A}
        marks = await subject.number_marks([PHONE_A, PHONE_B])
        assert list(marks) == [PHONE_A]
        assert marks[PHONE_A].reason == "twilio_21211"
        assert marks[PHONE_A].marked_at <= datetime.now(UTC)
        assert await subject.unmark_number(PHONE_B) is False  # never marked
        assert await subject.unmark_number(PHONE_A) is True
        assert await subject.marked_numbers([PHONE_A]) == set()
        assert await subject.mark_number(PHONE_A, "infobip_EC_UNKNOWN_SUBSCRIBER") is True  # again, anew

    async def test_undelivered_reports_make_a_streak_that_a_delivered_one_ends(
        self, subject: NotificationStore
    ) -> None:
        for order in ("A1", "A2", "A3"):
            await _sms_sent(subject, order, PHONE_A)
        first = await subject.number_report(nid("A1"), delivered=False)
        second = await subject.number_report(nid("A2"), delivered=False)
        assert first is not None
        assert (first.subject, first.streak, first.marked) == (PHONE_A, 1, False)
        assert second is not None
        assert second.streak == 2
        ended = await subject.number_report(nid("A3"), delivered=True)
        assert ended is not None
        assert ended.streak == 0
        again = await subject.number_report(nid("A1"), delivered=False)
        assert again is not None
        assert again.streak == 1
        await subject.mark_number(PHONE_A, "twilio_undelivered")
        marked = await subject.number_report(nid("A2"), delivered=False)
        assert marked is not None
        assert marked.marked
        assert await subject.marked_numbers([PHONE_A]) == {PHONE_A}  # a report never takes a mark off

    async def test_a_delivered_report_keeps_nothing_of_a_number_that_never_failed(
        self, subject: NotificationStore
    ) -> None:
        await _sms_sent(subject, "B1", PHONE_B)
        assert await subject.number_report(nid("B1"), delivered=True) is None
        assert await subject.marked_numbers([PHONE_B]) == set()

    async def test_a_report_on_a_notification_without_a_number_counts_against_none(
        self, subject: NotificationStore
    ) -> None:
        await _sms_sent(subject, "C1", None)
        assert await subject.number_report(nid("C1"), delivered=False) is None
        assert await subject.number_report(nid("never-claimed"), delivered=False) is None
