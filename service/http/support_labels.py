"""What staff read on the support page: every milestone, outcome, reason, channel and provider as
plain zh-HK and English, from one table. Codes stay in the JSON API; the page shows these labels.

Every ``State``, every ``Milestone`` and every reason of ``service.domain.reasons`` has a label here
(``tests/unit/http/test_support_labels.py`` enumerates them from the domain); a provider's own code
(``twilio_30003``) is labelled with its provider and the code as given.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from service.domain import reasons
from service.domain.consent_snapshot import ConsentState
from service.domain.follow_ups import FollowUp
from service.domain.lifecycle import State
from service.domain.milestones import Milestone


class Label(NamedTuple):
    zh: str
    en: str


MILESTONES: Final = {
    Milestone.ARRIVED_HK_WAREHOUSE: Label("已到達香港倉庫", "Arrived at the Hong Kong warehouse"),
    Milestone.CUSTOMS_CLEARED: Label("已完成海關手續", "Cleared customs"),
    Milestone.READY_FOR_PICKUP: Label("可以取車", "Ready to collect"),
}

STATES: Final = {
    State.CLAIMED: Label("處理中", "Being sent"),
    State.SENT: Label("已發送，等待送達報告", "Sent, waiting for the delivery report"),
    State.DELIVERED: Label("已送達", "Delivered"),
    State.UNDELIVERED: Label("未能送達", "Not delivered"),
    State.FAILED: Label("發送失敗", "Failed: nothing more will be tried"),
    State.SUPPRESSED_INVALID_RECIPIENT: Label(
        "未發送：沒有有效聯絡資料", "Not sent: no valid mobile or email"
    ),
    State.SUPPRESSED_OPTED_OUT: Label("未發送：客戶已取消通知", "Not sent: the customer opted out"),
    State.SUPPRESSED_STALE: Label("未發送：已有較後的進度", "Not sent: a later milestone came first"),
    State.SUPPRESSED_PILOT: Label(
        "未發送：試行期間，客戶不在名單內", "Not sent: pilot mode, the customer is not on the allow-list"
    ),
    # quiet hours and coalescing
    State.SCHEDULED: Label("已排期：靜音時段後發送", "Scheduled: goes after the quiet hours"),
    State.SUPPRESSED_SUPERSEDED: Label(
        "未發送：同時到期的較後進度已發送", "Not sent: a later milestone due with it was sent instead"
    ),
}

REASONS: Final = {
    reasons.STALE: Label("已通知較後的進度", "A later milestone was already notified"),
    reasons.OPTED_OUT: Label("客戶已取消通知", "The customer opted out"),
    reasons.RENDER_ERROR: Label(
        "訊息範本出錯（請通知技術支援）", "The message template failed (tell IT support)"
    ),
    reasons.RECONCILED: Label("重新啟動後確認供應商已收到", "Confirmed at the provider after a restart"),
    reasons.SMS_TOO_LONG: Label("短訊太長，改用電郵", "SMS too long: email instead"),
    reasons.INVALID_PHONE: Label("沒有有效的手機號碼", "No valid mobile number"),
    reasons.NO_CHANNEL: Label("沒有可用的發送方式", "No way to send it"),
    reasons.NO_SMS: Label("沒有可發送的短訊", "No SMS to send"),
    reasons.NO_EMAIL: Label("沒有電郵地址", "No email address"),
    reasons.QUIET_HOURS: Label("靜音時段內，延至時段結束後發送", "Inside the quiet hours: sent after them"),
    reasons.SUPERSEDED: Label("已改為發送較後的進度", "A later milestone was sent instead"),
    reasons.NO_SEALED_EVENT: Label("排期訊息的資料已刪除", "The scheduled message's data was erased"),
    "phone_empty": Label("沒有電話號碼", "No phone number"),
    "phone_unparseable": Label("電話號碼格式有誤", "Phone number unreadable"),
    "phone_invalid": Label("電話號碼無效", "Not a valid phone number"),
    "phone_not_hong_kong": Label("不是香港號碼", "Not a Hong Kong number"),
    "phone_fixed_line": Label("固網電話，不能收短訊", "Fixed-line number: cannot receive SMS"),
    "phone_pager": Label("傳呼機號碼，不能收短訊", "Pager number: cannot receive SMS"),
    "phone_personal_number": Label("個人號碼，不是手機", "Personal number: not a mobile"),
    "phone_not_mobile": Label("不是手機號碼", "Not a mobile number"),
    # pilot mode and bad-number hygiene (issue 15)
    reasons.PILOT_NOT_LISTED: Label(
        "試行期間：聯絡資料不在名單內", "Pilot mode: no contact on the allow-list"
    ),
    reasons.PILOT_PHONE_NOT_LISTED: Label(
        "試行期間：手機號碼不在名單內，改用電郵",
        "Pilot mode: the mobile is not on the allow-list, email instead",
    ),
    reasons.BAD_NUMBER: Label(
        "此號碼之前多次未能送達，已停用短訊", "This number failed for good before: no more SMS to it"
    ),
}

#: What we say of a provider, with ``{p}`` its name.
PROVIDER_CONDITIONS: Final = {
    reasons.UNAVAILABLE: Label("{p} 暫時未能使用", "{p} was unavailable"),
    reasons.CIRCUIT_OPEN: Label("{p} 多次出錯，暫停使用", "{p} paused after repeated errors"),
    reasons.RATE_LIMIT_DEADLINE: Label("{p} 已達發送上限", "{p} at its sending limit"),
    reasons.UNDELIVERED: Label("{p} 報告未能送達", "{p} reported it not delivered"),
}
PROVIDER_CODE: Final = Label("{p} 代碼 {code}", "{p} code {code}")
#: The notification's number is marked undeliverable (bad-number hygiene): no more SMS to it.
NUMBER_MARKED: Final = Label(
    "此手機號碼已標記為無法送達，不再發短訊", "This mobile number is marked undeliverable: no more SMS to it"
)

# --- follow-ups of the pickup notice: their receipts are shown with the notice's, named so ---
#: ``{n}``: which reminder.
FOLLOW_UPS: Final = {
    FollowUp.PICKUP_REMINDER: Label("取車提醒（第 {n} 次）", "Pickup reminder {n}"),
    FollowUp.SURVEY: Label("滿意度調查連結", "Satisfaction-survey link"),
}


def follow_up_label(kind: str, number: int | None, what: Label) -> Label:
    """``Pickup reminder 2: Sent``; an unknown kind (a newer version's) is shown as it is."""
    try:
        head = FOLLOW_UPS[FollowUp(kind)]
    except ValueError:
        head = Label(kind, kind)
    n = number or 1
    return Label(f"{head.zh.format(n=n)}：{what.zh}", f"{head.en.format(n=n)}: {what.en}")


PROVIDERS: Final = {"twilio": "Twilio", "infobip": "Infobip", "sendgrid": "SendGrid"}
CHANNELS: Final = {"sms": Label("短訊", "SMS"), "email": Label("電郵", "Email"), "none": Label("—", "—")}

# --- consent: the snapshot each decision applied (``service.domain.consent_snapshot``) ---
CONSENT_STATES: Final = {
    ConsentState.OPTED_OUT: Label("同意紀錄：已取消通知", "Consent: opted out"),
    ConsentState.OPTED_IN: Label("同意紀錄：已重新接收通知", "Consent: opted back in"),
    ConsentState.NO_RECORD: Label("同意紀錄：從未取消通知", "Consent: never opted out"),
}
#: Who set the record, by the source's kind; ``{p}`` a provider, ``{who}`` a staff member or operator.
CONSENT_SOURCES: Final = {
    "unsubscribe_link": Label("客戶經取消通知連結", "the customer, by the unsubscribe link"),
    "sms_reply": Label("客戶回覆短訊（{p}）", "the customer, by SMS reply ({p})"),
    "provider": Label("{p} 報告客戶已取消", "{p} reported the number opted out"),
    "operator": Label("職員 {who}", "staff {who}"),
}


def consent_label(state: str, source: str | None, at: str | None) -> Label:
    """``Consent: opted out (the customer, by SMS reply (Twilio), 2026-12-01 10:00)``; an unknown
    state or source (an older version's) is shown as it is."""
    try:
        head = CONSENT_STATES[ConsentState(state)]
    except ValueError:
        head = Label(state, state)
    if source is None:
        return head
    kind, _, rest = source.partition(":")
    if (by := CONSENT_SOURCES.get(kind)) is None:
        zh = en = source
    else:
        p = provider_name(rest or None)
        zh, en = by.zh.format(p=p, who=rest).strip(), by.en.format(p=p, who=rest).strip()
    when = f"，{at}" if at else ""
    return Label(f"{head.zh}（{zh}{when}）", f"{head.en} ({en}{', ' + at if at else ''})")


def reason_label(reason: str) -> Label:
    """The staff's words for a reason; an unknown code (an older version's) is shown as it is."""
    if (known := REASONS.get(reason)) is not None:
        return known
    if (split := reasons.split_provider_reason(reason)) is not None:
        provider, what = split
        name = PROVIDERS[provider]
        template = PROVIDER_CONDITIONS.get(what, PROVIDER_CODE)
        return Label(template.zh.format(p=name, code=what), template.en.format(p=name, code=what))
    return Label(f"其他（{reason}）", f"Other ({reason})")


def state_label(state: str) -> Label:
    try:
        return STATES[State(state)]
    except ValueError:
        return Label(state, state)


def milestone_label(milestone: str) -> Label:
    try:
        return MILESTONES[Milestone(milestone)]
    except ValueError:
        return Label(milestone, milestone)


def provider_name(provider: str | None) -> str:
    return PROVIDERS.get(provider, provider) if provider else "—"
