"""Every code the domain can put on a notification has the staff's words for it, in zh-HK and English."""

from __future__ import annotations

import pytest

from service.domain import reasons
from service.domain.follow_ups import FollowUp
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.phone import REASONS as PHONE_REASONS
from service.http import support_labels as labels
from service.http.support_labels import Label, reason_label


def test_every_state_and_milestone_has_a_label() -> None:
    assert set(labels.STATES) == set(State)
    assert set(labels.MILESTONES) == set(Milestone)


def test_every_fixed_reason_and_provider_condition_has_its_own_label() -> None:
    assert set(labels.REASONS) == reasons.FIXED
    assert {reasons.PHONE_PREFIX + why for why in PHONE_REASONS} <= set(labels.REASONS)
    assert set(labels.PROVIDER_CONDITIONS) == set(reasons.PROVIDER_CONDITIONS)
    assert set(labels.PROVIDERS) == set(reasons.PROVIDERS)


@pytest.mark.parametrize("reason", reasons.every_example())
def test_no_reason_the_code_produces_is_shown_as_a_code(reason: str) -> None:
    label = reason_label(reason)
    assert not label.en.startswith("Other")
    assert reason not in (label.zh, label.en)
    assert all(label)
    assert any("\u4e00" <= c <= "\u9fff" for c in label.zh)


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (reasons.STALE, Label("已通知較後的進度", "A later milestone was already notified")),
        ("twilio_unavailable", Label("Twilio 暫時未能使用", "Twilio was unavailable")),
        ("infobip_undelivered", Label("Infobip 報告未能送達", "Infobip reported it not delivered")),
        ("twilio_30003", Label("Twilio 代碼 30003", "Twilio code 30003")),
        ("sendgrid_bounce", Label("SendGrid 代碼 bounce", "SendGrid code bounce")),
        ("phone_fixed_line", Label("固網電話，不能收短訊", "Fixed-line number: cannot receive SMS")),
        ("from_a_future_version", Label("其他（from_a_future_version）", "Other (from_a_future_version)")),
    ],
)
def test_reason_label(reason: str, label: Label) -> None:
    assert reason_label(reason) == label


def test_an_unknown_state_or_milestone_is_shown_as_it_is() -> None:
    assert labels.state_label("queued") == Label("queued", "queued")
    assert labels.milestone_label("delivered_home") == Label("delivered_home", "delivered_home")
    assert labels.provider_name(None) == "—"


# --- consent snapshots ---
def test_every_consent_state_and_source_kind_has_a_label() -> None:
    from service.domain.consent_snapshot import SOURCE_KINDS, ConsentState

    assert set(labels.CONSENT_STATES) == set(ConsentState)
    assert set(labels.CONSENT_SOURCES) == set(SOURCE_KINDS)
    for label in (*labels.CONSENT_STATES.values(), *labels.CONSENT_SOURCES.values()):
        assert any("\u4e00" <= c <= "\u9fff" for c in label.zh)


@pytest.mark.parametrize(
    ("state", "source", "at", "label"),
    [
        ("no_record", None, None, Label("同意紀錄：從未取消通知", "Consent: never opted out")),
        (
            "opted_out",
            "sms_reply:twilio",
            "2026-12-01 10:00",
            Label(
                "同意紀錄：已取消通知（客戶回覆短訊（Twilio），2026-12-01 10:00）",
                "Consent: opted out (the customer, by SMS reply (Twilio), 2026-12-01 10:00)",
            ),
        ),
        (
            "opted_out",
            "operator:admin-bob",
            "2026-12-01 10:00",
            Label(
                "同意紀錄：已取消通知（職員 admin-bob，2026-12-01 10:00）",
                "Consent: opted out (staff admin-bob, 2026-12-01 10:00)",
            ),
        ),
        (
            "opted_in",
            "operator",  # a receipt's kind: no name
            None,
            Label("同意紀錄：已重新接收通知（職員）", "Consent: opted back in (staff)"),
        ),
        (
            "opted_out",
            "provider:infobip",
            None,
            Label(
                "同意紀錄：已取消通知（Infobip 報告客戶已取消）",
                "Consent: opted out (Infobip reported the number opted out)",
            ),
        ),
        # an older or newer version's codes are shown as they are, braces and all
        ("paused", "kiosk:{0}", None, Label("paused（kiosk:{0}）", "paused (kiosk:{0})")),
    ],
)
def test_consent_label(state: str, source: str | None, at: str | None, label: Label) -> None:
    assert labels.consent_label(state, source, at) == label


def test_every_follow_up_has_a_label_and_an_unknown_one_is_shown_as_it_is() -> None:
    assert set(labels.FOLLOW_UPS) == set(FollowUp)
    assert all(all(label) for label in labels.FOLLOW_UPS.values())
    sent = Label("已發送", "Sent")
    assert labels.follow_up_label("pickup_reminder", 2, sent) == Label(
        "取車提醒（第 2 次）：已發送", "Pickup reminder 2: Sent"
    )
    assert labels.follow_up_label("newer_kind", None, sent) == Label("newer_kind：已發送", "newer_kind: Sent")
