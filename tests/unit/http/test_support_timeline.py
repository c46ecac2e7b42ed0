"""One notification's steps for staff, from its row and its receipts (tables of fixed times)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from service.contracts import ReceiptV1
from service.domain.lifecycle import State
from service.http import support_timeline as t
from service.http.support_labels import CHANNELS, Label
from service.store.staff import SupportRow

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
NID = uuid.uuid4()


def row(state: State, channel: str | None = "sms", **kw: object) -> SupportRow:
    base: dict[str, object] = dict(
        notification_id=NID, order_id="SO-1", waybill="SF1", milestone="ready_for_pickup", state=state,
        channel=channel, provider="twilio", reason=None, occurred_at=T0, updated_at=T0, delivered_at=None,
        key_id=None, ciphertext=None, phone_subject=None, email_subject=None, created_at=T0,
    )  # fmt: skip
    return SupportRow(**{**base, **kw})  # type: ignore[arg-type]


def receipt(
    outcome: State, minutes: int, channel: str = "sms", provider: str | None = "twilio", **kw: object
) -> ReceiptV1:
    return ReceiptV1(
        receipt_id=uuid.uuid4(), notification_id=NID, order_id="SO-1", waybill="SF1", milestone="ready_for_pickup",
        event_id="e1", outcome=outcome, channel=channel, provider=provider, occurred_at=T0,
        decided_at=T0 + timedelta(minutes=minutes), **kw,
    )  # fmt: skip


def test_an_undelivered_sms_then_the_email_fallback_delivered() -> None:
    receipts = [
        receipt(State.SENT, 1),
        receipt(State.UNDELIVERED, 5, reason="twilio_30003"),
        receipt(State.SENT, 6, "email", "sendgrid"),
        receipt(State.DELIVERED, 7, "email", "sendgrid"),
    ]
    steps = t.steps(row(State.DELIVERED, "email", provider="sendgrid"), receipts)
    assert [(s.at - T0, s.what) for s in steps] == [
        (timedelta(0), t.DECIDED),
        (timedelta(minutes=1), t.SENT),
        (timedelta(minutes=5), t.UNDELIVERED),
        (timedelta(minutes=6), t.FALLBACK_SENT),
        (timedelta(minutes=7), t.DELIVERED),
    ]
    assert steps[1].details == (CHANNELS["sms"], Label("Twilio", "Twilio"))
    assert steps[2].details[-1] == Label("Twilio 代碼 30003", "Twilio code 30003")
    assert steps[3].details[0] == CHANNELS["email"]


def test_an_owed_fallback_is_scheduled_and_a_failed_one_says_so() -> None:
    due = T0 + timedelta(minutes=30)
    owed = t.steps(
        row(State.UNDELIVERED, fallback_due_at=due), [receipt(State.SENT, 1), receipt(State.UNDELIVERED, 2)]
    )
    assert (owed[-1].at, owed[-1].what, owed[-1].upcoming) == (due, t.FALLBACK_SCHEDULED, True)
    failed = t.steps(
        row(State.FAILED, "email"),
        [receipt(State.SENT, 1), receipt(State.UNDELIVERED, 2), receipt(State.FAILED, 3, "email", "sendgrid", reason="sendgrid_unavailable")],
    )  # fmt: skip
    assert failed[-1].what == t.FALLBACK_FAILED
    assert failed[-1].details == (Label("SendGrid 暫時未能使用", "SendGrid was unavailable"),)


def test_a_failed_email_without_an_undelivered_sms_is_not_a_fallback() -> None:
    steps = t.steps(row(State.FAILED, "email"), [receipt(State.FAILED, 1, "email", "sendgrid")])
    assert steps[-1].what == Label("發送失敗", "Failed: nothing more will be tried")


def test_a_suppressed_notification_shows_its_state_and_reason() -> None:
    stale = receipt(State.SUPPRESSED_STALE, 0, "none", None, reason="later_milestone_already_reached")
    steps = t.steps(row(State.SUPPRESSED_STALE, None), [stale])
    assert [s.what.en for s in steps] == ["Decided to notify", "Not sent: a later milestone came first"]
    assert steps[-1].details == (Label("已通知較後的進度", "A later milestone was already notified"),)


def test_an_sms_without_a_final_word_shows_its_next_look_up_or_that_look_ups_stopped() -> None:
    due, gave_up = T0 + timedelta(minutes=15), T0 + timedelta(days=2)
    waiting = t.steps(row(State.SENT, status_check_due_at=due), [receipt(State.SENT, 1)])
    assert (waiting[-1].what, waiting[-1].upcoming) == (t.LOOK_UP_SCHEDULED, True)
    stopped = t.steps(
        row(State.SENT, status_check_due_at=due, status_gave_up_at=gave_up), [receipt(State.SENT, 1)]
    )
    assert (stopped[-1].at, stopped[-1].what, stopped[-1].upcoming) == (gave_up, t.LOOK_UPS_STOPPED, False)
    assert t.steps(row(State.DELIVERED, status_check_due_at=due), [])[-1].what == t.DECIDED


def test_a_claim_with_nothing_recorded_yet_is_only_decided() -> None:
    assert [s.what for s in t.steps(row(State.CLAIMED, None), [])] == [t.DECIDED]
    assert t.steps(row(State.CLAIMED, None, created_at=None), []) == []
