"""The follow-up job on fakes: what each due pickup reminder and survey link comes to (sent with its
own text and receipt, moved on to the next reminder or dropped, not sent after pickup, nor beyond
the most, nor to an opted-out recipient, held, paused), and that nothing personal is in a receipt."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from structlog.testing import capture_logs

from service.contracts import ReceiptV1
from service.domain.errors import ProviderRejected
from service.domain.follow_up_plan import due_kind
from service.domain.follow_ups import FollowUp, follow_up_id
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.quiet_hours import HKT, QuietHours, QuietWindow
from service.domain.reminders import ReminderPolicy
from service.domain.survey import SurveySigner
from service.pipeline.follow_up_release import FollowUpRelease
from service.store.scheduled_sends import schedule_id
from service.testing import FakeFollowUps
from tests.builders import EMAIL, NAME, PHONE, event
from tests.unit.pipeline.test_quiet_hours_dispatch import Quiet

READY = datetime(2026, 11, 20, 11, 0, tzinfo=HKT)
KEY = os.urandom(32)
SURVEY = "https://survey.example.com.hk/s"


class Pickups(Quiet):
    """A pickup notice sent (its event sealed; outside the quiet hours of the stages), and the
    follow-up job over its follow-ups, all on the test's clock."""

    def __init__(
        self,
        *,
        after_days: int = 3,
        most: int = 2,
        survey: bool = True,
        channel: Literal["sms", "email"] = "sms",
        quiet: str | None = None,
    ) -> None:
        super().__init__(READY + timedelta(minutes=1))
        self.follow_ups = FakeFollowUps(self.store, self.pickups.rows)
        self.paused = False
        self.job = FollowUpRelease(
            store=self.follow_ups,
            sender=self.stages.sender,
            receipts=self.stages.receipts,
            keyring=self.keyring,
            metrics=self.metrics,
            clock=lambda: self.now.astimezone(UTC),
            policy=ReminderPolicy(after_days, most),
            survey=SurveySigner(KEY, SURVEY) if survey else None,
            survey_channel=channel,
            quiet=QuietHours(QuietWindow.parse(quiet), frozenset(Milestone)) if quiet else None,
            rate_per_s=10.0,
            interval_s=1.0,
            lease_s=300.0,
            hold_s=30.0,
            paused=lambda: self.paused,
        )

    async def notice(self, order: str = "A", **kw: object) -> None:
        """The pickup notice sent (its event sealed), the bike ready since READY."""
        await self.feed(event(order, "READY_FOR_PICKUP", locale="en", **kw))
        self.pickups.rows[order] = {"place": None, "ready_at": READY, "picked_up_at": None}

    async def due(self, kind: FollowUp, order: str, at: datetime) -> uuid.UUID:
        """Put a follow-up of the order's notice on the schedule; returns its row's id."""
        assert await self.follow_ups.schedule_follow_ups([(kind, order, at)]) == 1
        return schedule_id(due_kind(kind), notification_id(order, Milestone.READY_FOR_PICKUP))

    def follow_up_receipts(self) -> list[dict[str, object]]:
        docs = [json.loads(r.payload) for r in self.receipts.published]
        return [d for d in docs if d.get("follow_up")]

    def counted(self, kind: FollowUp, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "notifier_follow_ups_total", {"kind": kind.value, "result": result}
        )
        return value or 0.0


async def test_a_due_reminder_is_sent_with_its_own_text_and_receipt_then_moves_on_to_the_next() -> None:
    h = Pickups()
    await h.notice()
    sid = await h.due(FollowUp.PICKUP_REMINDER, "A", READY + timedelta(days=3))
    h.now = READY + timedelta(days=3) - timedelta(seconds=1)
    assert await h.job.run_once() == 0
    h.now = READY + timedelta(days=3)
    assert await h.job.run_once() == 1
    assert len(h.sender.sent) == 2  # the notice, then the reminder
    body = h.sender.sent[1][1]
    assert "a reminder" in body
    assert "ready to collect for 3 days" in body
    [r] = h.follow_up_receipts()
    assert (r["outcome"], r["follow_up"], r["follow_up_number"]) == ("sent", "pickup_reminder", 1)
    assert r["notification_id"] == str(notification_id("A", Milestone.READY_FOR_PICKUP))
    assert r["milestone"] == "ready_for_pickup"
    ReceiptV1.model_validate(r)
    assert h.follow_ups.rows[sid].due_from == READY + timedelta(days=6)  # reminder 2, from the same row
    assert h.counted(FollowUp.PICKUP_REMINDER, "sent") == 1
    assert await h.job.run_once() == 0  # never twice


async def test_no_reminder_after_pickup_and_none_beyond_the_most() -> None:
    h = Pickups(after_days=1, most=2)
    await h.notice("A")
    await h.notice("B")
    await h.due(FollowUp.PICKUP_REMINDER, "A", READY + timedelta(days=1))
    await h.due(FollowUp.PICKUP_REMINDER, "B", READY + timedelta(days=1))
    h.pickups.rows["B"]["picked_up_at"] = READY + timedelta(hours=20)  # collected before it was due
    for days in range(1, 6):
        h.now = READY + timedelta(days=days)
        await h.job.run_once()
    numbers = [(r["order_id"], r["follow_up_number"]) for r in h.follow_up_receipts()]
    assert numbers == [("A", 1), ("A", 2)]
    assert len(h.sender.sent) == 4  # two notices, two reminders of A
    assert h.follow_ups.rows == {}
    assert h.counted(FollowUp.PICKUP_REMINDER, "picked_up") == 1


async def test_an_opted_out_recipient_gets_a_suppressed_receipt_and_no_further_reminder() -> None:
    h = Pickups(after_days=1, most=3)
    await h.notice()
    await h.store.set_consent([h.blind.phone("+85291234567")], opted_out=True, source="operator:test")
    await h.due(FollowUp.PICKUP_REMINDER, "A", READY + timedelta(days=1))
    h.now = READY + timedelta(days=1)
    await h.job.run_once()
    [r] = h.follow_up_receipts()
    assert (r["outcome"], r["reason"], r["consent_state"]) == (
        "suppressed_opted_out",
        "opted_out",
        "opted_out",
    )
    assert len(h.sender.sent) == 1
    assert h.follow_ups.rows == {}  # no reminder 2 or 3


async def test_a_reminder_due_in_quiet_hours_waits_for_the_windows_end_even_if_pickups_break_through() -> (
    None
):
    h = Pickups(quiet="21:30-09:00")
    await h.notice()
    night = datetime(2026, 11, 24, 2, 0, tzinfo=HKT)
    sid = await h.due(FollowUp.PICKUP_REMINDER, "A", night)
    h.now = night
    await h.job.run_once()
    assert len(h.sender.sent) == 1
    assert h.follow_ups.rows[sid].not_before == datetime(2026, 11, 24, 9, 0, tzinfo=HKT)
    h.now = datetime(2026, 11, 24, 9, 0, tzinfo=HKT)
    await h.job.run_once()
    assert len(h.sender.sent) == 2


async def test_the_survey_goes_once_with_a_signed_link_in_the_customers_language() -> None:
    h = Pickups()
    await h.notice()
    due = READY + timedelta(days=2)
    await h.due(FollowUp.SURVEY, "A", due)
    h.now = due
    await h.job.run_once()
    await h.due(FollowUp.SURVEY, "A", due)  # scheduled again (a re-sent pickup): not sent again
    await h.job.run_once()
    assert len(h.sender.sent) == 2
    body = h.sender.sent[1][1]
    [url] = [w for w in body.split() if w.startswith(SURVEY)]
    ref = SurveySigner(KEY, SURVEY).verify(url.split("t=", 1)[1], now=due.astimezone(UTC))
    assert ref.locale == "en"
    assert ref.survey_id == SurveySigner(KEY, SURVEY).survey_id(
        notification_id("A", Milestone.READY_FOR_PICKUP)
    )
    [r] = h.follow_up_receipts()
    assert (r["outcome"], r["follow_up"], r["follow_up_number"]) == ("sent", "survey", 1)
    assert h.counted(FollowUp.SURVEY, "already_sent") == 1


async def test_the_survey_by_email_goes_by_email_only() -> None:
    h = Pickups(channel="email")
    await h.notice()
    await h.due(FollowUp.SURVEY, "A", READY + timedelta(days=1))
    h.now = READY + timedelta(days=1)
    await h.job.run_once()
    assert len(h.sender.sent) == 1  # the notice only: no SMS
    [mail] = h.email.sent
    assert SURVEY in str(mail)
    [r] = h.follow_up_receipts()
    assert (r["channel"], r["follow_up"]) == ("email", "survey")


async def test_no_survey_configured_or_no_sealed_event_drops_it_unsent() -> None:
    h = Pickups(survey=False)
    await h.notice("A")
    await h.notice("B")
    h.store.contacts.pop(notification_id("B", Milestone.READY_FOR_PICKUP))  # erased meanwhile
    await h.due(FollowUp.SURVEY, "A", READY)
    await h.due(FollowUp.PICKUP_REMINDER, "B", READY)
    h.now = READY + timedelta(days=3)
    await h.job.run_once()
    assert len(h.sender.sent) == 2  # the notices only
    assert h.follow_ups.rows == {}
    assert h.follow_up_receipts() == []
    assert h.counted(FollowUp.SURVEY, "survey_off") == 1
    assert h.counted(FollowUp.PICKUP_REMINDER, "no_contact") == 1


async def test_held_when_no_provider_can_take_it_then_sent_after_the_hold() -> None:
    h = Pickups()
    await h.notice()
    sid = await h.due(FollowUp.PICKUP_REMINDER, "A", READY + timedelta(days=3))
    h.sender.errors.append(ProviderRejected("sms-a", "20003"))
    h.backup.errors.append(ProviderRejected("sms-b", "401"))
    h.email.errors.append(ProviderRejected("fake-email", "403"))
    h.now = READY + timedelta(days=3)
    await h.job.run_once()
    assert h.follow_up_receipts() == []
    assert h.follow_ups.rows[sid].releases == 0  # given back
    assert h.counted(FollowUp.PICKUP_REMINDER, "held") == 1
    h.now += timedelta(seconds=30)
    await h.job.run_once()
    assert [r["outcome"] for r in h.follow_up_receipts()] == ["sent"]


async def test_nothing_is_released_while_sends_are_paused() -> None:
    h = Pickups()
    await h.notice()
    await h.due(FollowUp.PICKUP_REMINDER, "A", READY)
    h.now, h.paused = READY + timedelta(days=3), True
    assert await h.job.run_once() == 0
    assert len(h.sender.sent) == 1


async def test_no_personal_data_in_a_follow_ups_receipt_or_log() -> None:
    h = Pickups(after_days=1)
    await h.notice()
    await h.due(FollowUp.PICKUP_REMINDER, "A", READY)
    await h.due(FollowUp.SURVEY, "A", READY)
    h.now = READY + timedelta(days=1)
    with capture_logs() as logs:
        await h.job.run_once()
    assert len(h.follow_up_receipts()) == 2
    text = json.dumps(h.follow_up_receipts(), ensure_ascii=False) + repr(logs)
    digits = PHONE.replace(" ", "")
    for secret in (PHONE, digits, "+852" + digits, EMAIL, NAME, base64.b64encode(KEY).decode()):
        assert secret not in text
    ids = {r["receipt_id"] for r in h.follow_up_receipts()}
    assert len(ids) == 2
    assert follow_up_id("A", FollowUp.PICKUP_REMINDER) != follow_up_id("A", FollowUp.SURVEY)


async def test_the_survey_by_email_to_a_customer_without_an_address_is_receipted_not_texted() -> None:
    h = Pickups(channel="email")
    await h.notice(email=None)
    await h.due(FollowUp.SURVEY, "A", READY + timedelta(days=1))
    h.now = READY + timedelta(days=1)
    await h.job.run_once()
    assert len(h.sender.sent) == 1  # the notice only: the survey is not texted instead
    assert h.email.sent == []
    [r] = h.follow_up_receipts()
    assert (r["outcome"], r["reason"], r["follow_up"]) == ("failed", "no_channel", "survey")
    assert h.follow_ups.rows == {}
