"""One notification's story for staff, step by step with times, from what the store keeps: the claim
(the decision to notify), every receipt in the order written (sent, delivered / not delivered, the
email fallback, failed, suppressed; a decision's with the consent it applied; the pickup notice's
follow-ups, a reminder or the survey link, named as such), and what is
scheduled next (an owed email fallback, a status look-up at the provider, the release of a
notification held by quiet hours). Pure: rows and receipts in, labelled steps out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from service.contracts import ReceiptV1
from service.domain.consent_snapshot import source_kind
from service.domain.lifecycle import State
from service.http.support_labels import (
    CHANNELS,
    Label,
    consent_label,
    follow_up_label,
    provider_name,
    reason_label,
    state_label,
)
from service.store.staff import SupportRow

DECIDED: Final = Label("決定發送通知", "Decided to notify")
SENT: Final = Label("已發送", "Sent")
FALLBACK_SENT: Final = Label("已改用電郵補發", "Email fallback sent")
FALLBACK_FAILED: Final = Label("電郵補發失敗", "Email fallback failed")
DELIVERED: Final = Label("已送達", "Delivered")
UNDELIVERED: Final = Label("未能送達", "Not delivered")
FALLBACK_SCHEDULED: Final = Label("已安排電郵補發", "Email fallback scheduled")
LOOK_UP_SCHEDULED: Final = Label("已安排向供應商查詢狀態", "Status look-up at the provider scheduled")
LOOK_UPS_STOPPED: Final = Label("已停止查詢狀態（沒有最終報告）", "Status look-ups stopped (no final report)")
RELEASE_SCHEDULED: Final = Label("靜音時段後發送", "Goes after the quiet hours")
FOLLOW_UP_PLANNED: Final = Label("已安排（如客戶仍未取車）", "Planned (unless collected first)")


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime
    what: Label
    details: tuple[Label, ...] = ()
    upcoming: bool = False  # scheduled, not yet happened


def _via(r: ReceiptV1) -> tuple[Label, ...]:
    if r.channel == "none":
        return ()
    return (CHANNELS[r.channel], Label(provider_name(r.provider), provider_name(r.provider)))


def _receipt_step(r: ReceiptV1, after_undelivered_sms: bool) -> Step:
    if r.follow_up is not None:  # a pickup reminder or the survey link, after the notice's own
        step = _receipt_step(r.model_copy(update={"follow_up": None}), False)
        return dataclasses.replace(step, what=follow_up_label(r.follow_up, r.follow_up_number, step.what))
    why = (reason_label(r.reason),) if r.reason else ()
    fallback = after_undelivered_sms and r.channel == "email"
    if r.outcome == State.SENT:
        return Step(r.decided_at, FALLBACK_SENT if fallback else SENT, (*_via(r), *why))
    if r.outcome == State.DELIVERED:
        return Step(r.decided_at, DELIVERED, _via(r))
    if r.outcome == State.UNDELIVERED:
        return Step(r.decided_at, UNDELIVERED, (*_via(r), *why))
    if r.outcome == State.FAILED:
        return Step(r.decided_at, FALLBACK_FAILED if fallback else state_label(r.outcome), why)
    return Step(r.decided_at, state_label(r.outcome), why)  # suppressed: the state says what


_HK: Final = ZoneInfo("Asia/Hong_Kong")


def consent_of(row: SupportRow) -> Label | None:
    """The consent the notification's latest decision applied, as the store keeps it (with an
    operator's name); None before it was decided (or before migration 0018)."""
    if row.consent_state is None:
        return None
    at = f"{row.consent_set_at.astimezone(_HK):%Y-%m-%d %H:%M}" if row.consent_set_at else None
    return consent_label(row.consent_state, row.consent_source, at)


def _consent_detail(row: SupportRow, r: ReceiptV1) -> tuple[Label, ...]:
    """The consent a decision's receipt says it applied; the row's own words (an operator's name,
    which a receipt never carries) when they are the same record."""
    if r.consent_state is None:
        return ()
    if (
        row.consent_state == r.consent_state
        and row.consent_set_at == r.consent_set_at
        and (row.consent_source is None) == (r.consent_source is None)
        and (row.consent_source is None or source_kind(row.consent_source) == r.consent_source)
    ):
        return (label,) if (label := consent_of(row)) else ()
    at = f"{r.consent_set_at.astimezone(_HK):%Y-%m-%d %H:%M}" if r.consent_set_at else None
    return (consent_label(r.consent_state, r.consent_source, at),)


def steps(
    row: SupportRow,
    receipts: Sequence[ReceiptV1],
    planned: datetime | None = None,
    follow_ups: Sequence[tuple[str, int, datetime]] = (),
) -> list[Step]:
    """The notification's steps: decided, each receipt (a decision's with its consent), then what is
    scheduled (``planned``: when a notification scheduled by quiet hours is to be released;
    ``follow_ups``: a pickup notice's reminder or survey link, its number, when it is due)."""
    found = [Step(row.created_at, DECIDED)] if row.created_at else []
    undelivered_sms = False
    for r in receipts:
        step = _receipt_step(r, undelivered_sms)
        found.append(dataclasses.replace(step, details=(*step.details, *_consent_detail(row, r))))
        undelivered_sms = undelivered_sms or (
            r.outcome == State.UNDELIVERED and r.channel == "sms" and r.follow_up is None
        )
    if row.state == State.SCHEDULED and planned is not None:
        found.append(Step(planned, RELEASE_SCHEDULED, upcoming=True))
    if row.state == State.UNDELIVERED and row.fallback_due_at:
        found.append(Step(row.fallback_due_at, FALLBACK_SCHEDULED, upcoming=True))
    if row.state == State.SENT and row.channel == "sms":
        if row.status_gave_up_at:
            found.append(Step(row.status_gave_up_at, LOOK_UPS_STOPPED))
        elif row.status_check_due_at:
            found.append(Step(row.status_check_due_at, LOOK_UP_SCHEDULED, upcoming=True))
    for kind, number, at in follow_ups:
        found.append(Step(at, follow_up_label(kind, number, FOLLOW_UP_PLANNED), upcoming=True))
    return found
