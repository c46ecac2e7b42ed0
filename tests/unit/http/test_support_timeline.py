"""One notification's steps for staff, from its row and its receipts (tables of fixed times)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.contracts import ReceiptV1
from service.domain.lifecycle import State
from service.http import support_timeline as t
from service.http.support_labels import CHANNELS, Label
from service.store.staff import SupportRow

REPO = Path(__file__).resolve().parents[3]

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


# --- the consent each decision applied ---
OUT_AT = datetime(2026, 11, 19, 2, 30, tzinfo=UTC)  # 10:30 in Hong Kong


def test_a_decisions_step_says_which_consent_applied_in_the_stores_words() -> None:
    r = row(
        State.SUPPRESSED_OPTED_OUT,
        channel="none",
        consent_state="opted_out",
        consent_source="operator:admin-bob",
        consent_set_at=OUT_AT,
    )
    decided = receipt(
        State.SUPPRESSED_OPTED_OUT,
        1,
        channel="none",
        provider=None,
        reason="opted_out",
        consent_state="opted_out",
        consent_source="operator",
        consent_set_at=OUT_AT,
    )
    (_, step) = t.steps(r, [decided])
    # the same record as the row's: shown with the staff member's name, which no receipt carries
    assert step.details[-1] == Label(
        "同意紀錄：已取消通知（職員 admin-bob，2026-11-19 10:30）",
        "Consent: opted out (staff admin-bob, 2026-11-19 10:30)",
    )
    assert t.consent_of(r) == step.details[-1]


def test_an_earlier_decision_keeps_its_own_consent_and_a_report_shows_none() -> None:
    r = row(State.SENT, channel="email", consent_state="opted_in", consent_source="sms_reply:twilio",
            consent_set_at=OUT_AT + timedelta(days=1))  # fmt: skip
    receipts = [
        receipt(State.SENT, 1, consent_state="no_record"),
        receipt(State.UNDELIVERED, 5, reason="twilio_30003"),  # a report: no consent of its own
        receipt(
            State.SENT,
            9,
            channel="email",
            provider="sendgrid",
            consent_state="opted_in",
            consent_source="sms_reply:twilio",
            consent_set_at=OUT_AT + timedelta(days=1),
        ),
    ]
    _, first, report, fallback = t.steps(r, receipts)
    assert first.details[-1] == Label("同意紀錄：從未取消通知", "Consent: never opted out")
    assert all(not d.en.startswith("Consent") for d in report.details)
    assert (
        fallback.details[-1].en
        == "Consent: opted back in (the customer, by SMS reply (Twilio), 2026-11-20 10:30)"
    )


def test_a_row_decided_before_the_snapshot_existed_shows_no_consent() -> None:
    assert t.consent_of(row(State.SENT)) is None
    assert [d.en for d in t.steps(row(State.SENT), [receipt(State.SENT, 1)])[1].details] == ["SMS", "Twilio"]


def test_the_page_shows_each_decisions_consent_in_its_step() -> None:
    from service.http.staff_pages import StaffPages
    from service.http.support_desk import timeline
    from service.store.staff import Staff

    r = row(State.SUPPRESSED_OPTED_OUT, channel="none", consent_state="opted_out",
            consent_source="sms_reply:twilio", consent_set_at=OUT_AT)  # fmt: skip
    decided = receipt(State.SUPPRESSED_OPTED_OUT, 1, channel="none", provider=None, reason="opted_out",
                      consent_state="opted_out", consent_source="sms_reply:twilio", consent_set_at=OUT_AT)  # fmt: skip
    pages = StaffPages(
        REPO / "templates", {"brand": "B", "contact_phone": "+852 3001 2345", "contact_email": "x@y"}
    )
    html = pages.page(
        "cs_search", staff=Staff("agent-amy", "cs_agent"), q="SO-1", rows=timeline([r], {NID: [decided]}),
        order_id="SO-1", waybill="SF1", masked_phone="—", masked_email="—",
    ).text  # fmt: skip
    assert html is not None
    assert "同意紀錄：已取消通知（客戶回覆短訊（Twilio），2026-11-19 10:30）" in html
    assert "Consent: opted out (the customer, by SMS reply (Twilio), 2026-11-19 10:30)" in html


def test_the_pickup_notices_follow_ups_are_named_as_such_never_as_a_fallback() -> None:
    receipts = [
        receipt(State.SENT, 1),
        receipt(State.UNDELIVERED, 5, reason="twilio_30003"),
        receipt(State.SENT, 60 * 72, "email", "sendgrid", follow_up="pickup_reminder", follow_up_number=1),
        receipt(
            State.SUPPRESSED_OPTED_OUT, 60 * 144, "none", None, follow_up="pickup_reminder", follow_up_number=2,
            reason="opted_out",
        ),
        receipt(State.SENT, 60 * 200, follow_up="survey", follow_up_number=1),
    ]  # fmt: skip
    steps = t.steps(row(State.UNDELIVERED), receipts)
    assert [s.what.en for s in steps[3:]] == [
        "Pickup reminder 1: Sent",
        "Pickup reminder 2: Not sent: the customer opted out",
        "Satisfaction-survey link: Sent",
    ]
    assert steps[3].what.zh == "取車提醒（第 1 次）：已發送"
    assert steps[3].details[0] == CHANNELS["email"]  # the reminder's own channel, not a fallback
    assert steps[4].details == (Label("客戶已取消通知", "The customer opted out"),)


def test_a_pickup_notices_scheduled_follow_ups_are_upcoming_steps() -> None:
    due = T0 + timedelta(days=3)
    steps = t.steps(
        row(State.DELIVERED),
        [receipt(State.SENT, 1)],
        follow_ups=[("pickup_reminder", 2, due), ("survey", 1, due)],
    )
    upcoming = [(s.at, s.what.en) for s in steps if s.upcoming]
    assert upcoming == [
        (due, "Pickup reminder 2: Planned (unless collected first)"),
        (due, "Satisfaction-survey link: Planned (unless collected first)"),
    ]
