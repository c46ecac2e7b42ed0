"""The life cycle of a notification, as data: its states, the moves between them, what each owes.

One row of ``notifications`` per (order, milestone); its ``state`` column holds a ``State`` (a
CHECK constraint, migrations 0015 and 0017, allow exactly these values) and every receipt's ``outcome`` is
one of them too (all but ``claimed``). The whole machine, in short::

    (no row) ─► claimed ─► sent ─► delivered
                │  ▲         └──► undelivered ─► sent (the email fallback an SMS owes)
                │  └ reclaim, hold                └─► failed, suppressed_opted_out
                ├─► failed, suppressed_stale, suppressed_opted_out, suppressed_invalid_recipient,
                │   suppressed_superseded (a backlog: a later milestone of the order in the same batch),
                │   suppressed_pilot (also from undelivered: the fallback's address is not allow-listed)
                └─► scheduled (quiet hours) ─► sent, suppressed_superseded, failed, suppressed_*

``TRANSITIONS`` is the whole of it as one table, with what each move owes (``Duty``): the code
moves a notification only through ``transition(state, event)``, which refuses any other move.

Two things are called "held", and neither is a state: a *notification* held because no provider
could take it now (``HELD_NOTIFICATION``, an attempt's result: it stays ``claimed``, its claim
given back, read again later), and a *delivery report* held because it overtook the bookkeeping
of its send (``HELD_REPORT``, a report's result: kept in ``early_reports`` until the send is
recorded). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class State(StrEnum):
    """What ``notifications.state`` holds. Values are stored and published: never change one."""

    CLAIMED = "claimed"  # this service has the right to notify; nothing recorded yet
    SENT = "sent"  # a provider accepted it (SMS: awaits a delivery report or a status look-up)
    DELIVERED = "delivered"  # the provider reported it delivered
    UNDELIVERED = "undelivered"  # the provider reported it undelivered (SMS: an email fallback is owed)
    FAILED = "failed"  # it did not reach the customer, and nothing more will be tried
    SUPPRESSED_INVALID_RECIPIENT = "suppressed_invalid_recipient"  # no valid mobile and no email
    SUPPRESSED_OPTED_OUT = "suppressed_opted_out"  # the recipient opted out (with us or at a provider)
    SUPPRESSED_STALE = "suppressed_stale"  # a later milestone of the order was read first
    # pilot mode (migration 0017): the recipient is not on the pilot's allow-list
    SUPPRESSED_PILOT = "suppressed_pilot"
    # Quiet hours and coalescing (issue 15, migration 0019):
    SCHEDULED = "scheduled"  # decided in quiet hours: waits in ``scheduled_sends`` for the window's end
    SUPPRESSED_SUPERSEDED = "suppressed_superseded"  # released with a later milestone of its order: not sent


#: What a receipt may report, in the order the receipt's JSON Schema lists them.
RECEIPT_OUTCOMES: Final = (
    State.SENT,
    State.DELIVERED,
    State.UNDELIVERED,
    State.FAILED,
    State.SUPPRESSED_INVALID_RECIPIENT,
    State.SUPPRESSED_OPTED_OUT,
    State.SUPPRESSED_STALE,
    State.SUPPRESSED_PILOT,
    State.SCHEDULED,
    State.SUPPRESSED_SUPERSEDED,
)

#: A delivery attempt's result that is not a state: nothing was sent and a provider (not the
#: message) stood in the way. The notification stays ``claimed`` (``Event.HOLD``); never recorded.
HELD_NOTIFICATION: Final = "held"
#: The reason of a hold while sends are paused (shutdown, rebalance drain): not news, not counted.
DRAINING: Final = "draining"
#: A delivery report's result when it overtook its send's bookkeeping: kept until the send is recorded.
HELD_REPORT: Final = "held"


class Event(StrEnum):
    """What happens to a notification."""

    CLAIM = "claim"  # its first claim (the row is written)
    RECLAIM = "reclaim"  # claimed again: an earlier claim never finished (a crash mid-send)
    HOLD = "hold"  # no provider could take it now (or sends are paused)
    STALE = "stale"  # a later milestone of the order was read before it
    OPT_OUT = "opt_out"  # the recipient opted out (consent, or a provider's STOP)
    INVALID_RECIPIENT = "invalid_recipient"  # no valid mobile, no email
    FAIL = "fail"  # nothing can carry it (too long without email, rejected, out of fallback attempts)
    SEND_SMS = "send_sms"  # an SMS provider accepted it (or held an earlier claim's send)
    SEND_EMAIL = "send_email"  # the email provider accepted it
    REPORT_DELIVERED = "report_delivered"  # a callback or status look-up: delivered
    REPORT_SMS_UNDELIVERED = "report_sms_undelivered"  # ... an SMS undelivered
    REPORT_EMAIL_UNDELIVERED = "report_email_undelivered"  # ... an email undelivered
    FALLBACK_HELD = "fallback_held"  # the email fallback could not go now: still owed, tried later
    FALLBACK_DROPPED = "fallback_dropped"  # no fallback possible (no sealed event, no email address)
    SCHEDULE = "schedule"  # decided inside quiet hours: it goes at the window's end
    SUPERSEDE = "supersede"  # released while a later milestone of its order exists: that one is sent
    PILOT = "pilot"  # pilot mode: none of the recipient's usable contacts is on the allow-list


class Duty(StrEnum):
    """What a move owes, and who pays it."""

    RECORD = "record"  # write the state (``NotificationStore.finish`` / ``record_delivery``)
    RECEIPT = "receipt"  # a receipt in the outbox, in the same transaction, published in order
    SEAL_EVENT = "seal_event"  # keep the event sealed, for a later email fallback
    GIVE_BACK_CLAIM = "give_back_claim"  # ``release``: the next claim is not a crash's re-claim
    LOOK_UP_EARLIER_SEND = "look_up_earlier_send"  # ask the SMS providers (``find_sent``) before resending
    AWAIT_REPORT = "await_report"  # a status look-up if no report comes (``status_checks``)
    OWE_FALLBACK = "owe_fallback"  # an email fallback, owed from the same transaction
    RETRY_FALLBACK = "retry_fallback"  # the owed fallback again after a back-off
    SETTLE_FALLBACK = "settle_fallback"  # the fallback is no longer owed
    SCHEDULE_SEND = "schedule_send"  # a ``scheduled_sends`` row, in the same transaction (paced release)
    DROP_SCHEDULE = "drop_schedule"  # the ``scheduled_sends`` row goes once the release is recorded


@dataclass(frozen=True, slots=True)
class Transition:
    source: State | None  # None: no row yet
    event: Event
    target: State
    owes: frozenset[Duty]


def _t(source: State | None, event: Event, target: State, *owes: Duty) -> Transition:
    return Transition(source, event, target, frozenset(owes))


_C, _S, _U, _Q = State.CLAIMED, State.SENT, State.UNDELIVERED, State.SCHEDULED
_D = Duty

#: Every move a notification may make; anything else is a bug (``IllegalTransition``).
TRANSITIONS: Final = (
    _t(None, Event.CLAIM, _C),
    _t(_C, Event.RECLAIM, _C, _D.LOOK_UP_EARLIER_SEND),
    _t(_C, Event.HOLD, _C, _D.GIVE_BACK_CLAIM),  # unless the attempt may have gone out (maybe_sent)
    _t(_C, Event.STALE, State.SUPPRESSED_STALE, _D.RECORD, _D.RECEIPT),
    _t(_C, Event.OPT_OUT, State.SUPPRESSED_OPTED_OUT, _D.RECORD, _D.RECEIPT),
    _t(_C, Event.INVALID_RECIPIENT, State.SUPPRESSED_INVALID_RECIPIENT, _D.RECORD, _D.RECEIPT),
    _t(_C, Event.FAIL, State.FAILED, _D.RECORD, _D.RECEIPT),
    _t(_C, Event.SEND_SMS, _S, _D.RECORD, _D.RECEIPT, _D.SEAL_EVENT, _D.AWAIT_REPORT),
    _t(_C, Event.SEND_EMAIL, _S, _D.RECORD, _D.RECEIPT, _D.SEAL_EVENT),
    _t(_S, Event.REPORT_DELIVERED, State.DELIVERED, _D.RECORD, _D.RECEIPT),
    _t(_S, Event.REPORT_SMS_UNDELIVERED, _U, _D.RECORD, _D.RECEIPT, _D.OWE_FALLBACK),
    _t(_S, Event.REPORT_EMAIL_UNDELIVERED, _U, _D.RECORD, _D.RECEIPT),
    _t(_U, Event.SEND_EMAIL, _S, _D.RECORD, _D.RECEIPT, _D.SETTLE_FALLBACK),
    _t(_U, Event.FAIL, State.FAILED, _D.RECORD, _D.RECEIPT, _D.SETTLE_FALLBACK),
    _t(_U, Event.OPT_OUT, State.SUPPRESSED_OPTED_OUT, _D.RECORD, _D.RECEIPT, _D.SETTLE_FALLBACK),
    _t(_U, Event.FALLBACK_HELD, _U, _D.RETRY_FALLBACK),
    _t(_U, Event.FALLBACK_DROPPED, _U, _D.SETTLE_FALLBACK),
    # Quiet hours: scheduled, then released at the window's end (``service.pipeline.release``).
    _t(_C, Event.SCHEDULE, _Q, _D.RECORD, _D.RECEIPT, _D.SEAL_EVENT, _D.SCHEDULE_SEND),
    _t(_Q, Event.RECLAIM, _Q, _D.LOOK_UP_EARLIER_SEND),  # an earlier release never finished
    _t(_Q, Event.HOLD, _Q),  # no provider can take it now: released again after a back-off
    _t(_Q, Event.SUPERSEDE, State.SUPPRESSED_SUPERSEDED, _D.RECORD, _D.RECEIPT, _D.DROP_SCHEDULE),
    _t(_C, Event.SUPERSEDE, State.SUPPRESSED_SUPERSEDED, _D.RECORD, _D.RECEIPT),  # a backlog's, coalesced
    _t(_Q, Event.OPT_OUT, State.SUPPRESSED_OPTED_OUT, _D.RECORD, _D.RECEIPT, _D.DROP_SCHEDULE),
    _t(
        _Q,
        Event.INVALID_RECIPIENT,
        State.SUPPRESSED_INVALID_RECIPIENT,
        _D.RECORD,
        _D.RECEIPT,
        _D.DROP_SCHEDULE,
    ),
    _t(_Q, Event.FAIL, State.FAILED, _D.RECORD, _D.RECEIPT, _D.DROP_SCHEDULE),
    _t(_Q, Event.SEND_SMS, _S, _D.RECORD, _D.RECEIPT, _D.AWAIT_REPORT, _D.DROP_SCHEDULE),
    _t(_Q, Event.SEND_EMAIL, _S, _D.RECORD, _D.RECEIPT, _D.DROP_SCHEDULE),
    # pilot mode: decided and receipted, never sent (the fallback: its address is not allow-listed)
    _t(_C, Event.PILOT, State.SUPPRESSED_PILOT, _D.RECORD, _D.RECEIPT),
    _t(_U, Event.PILOT, State.SUPPRESSED_PILOT, _D.RECORD, _D.RECEIPT, _D.SETTLE_FALLBACK),
)

_TABLE: Final = {(t.source, t.event): t for t in TRANSITIONS}


class IllegalTransition(Exception):  # not a NotifierError: nothing may catch it as a condition
    """A move the life cycle does not allow: a bug, never a condition to handle."""


def transition(state: State | None, event: Event) -> Transition:
    """The move ``event`` makes from ``state``, with what it owes; raises ``IllegalTransition``."""
    found = _TABLE.get((state, event))
    if found is None:
        raise IllegalTransition(f"{event.value} is not allowed from {state.value if state else 'no row'}")
    return found


def can_move(source: State | None, target: State) -> bool:
    """Whether some event moves a notification from ``source`` to ``target``."""
    return any(t.source == source and t.target == target for t in TRANSITIONS)


def decided(outcome: str, channel: str) -> Event:
    """The event a delivery attempt's outcome (``Outcome.outcome`` and its channel) is."""
    if outcome == HELD_NOTIFICATION:
        return Event.HOLD
    try:
        return _DECIDED[(State(outcome), channel == "sms")]
    except (ValueError, KeyError):
        raise IllegalTransition(f"no event reaches '{outcome}' on '{channel}'") from None


def reported(*, delivered: bool, channel: str) -> Event:
    """The event a provider's final word on a sent message is."""
    if delivered:
        return Event.REPORT_DELIVERED
    return Event.REPORT_SMS_UNDELIVERED if channel == "sms" else Event.REPORT_EMAIL_UNDELIVERED


_DECIDED: Final = {
    **{
        (state, sms): event
        for state, event in (
            (State.SUPPRESSED_STALE, Event.STALE),
            (State.SUPPRESSED_OPTED_OUT, Event.OPT_OUT),
            (State.SUPPRESSED_INVALID_RECIPIENT, Event.INVALID_RECIPIENT),
            (State.FAILED, Event.FAIL),
            (State.SUPPRESSED_PILOT, Event.PILOT),
            (State.SCHEDULED, Event.SCHEDULE),
            (State.SUPPRESSED_SUPERSEDED, Event.SUPERSEDE),
        )
        for sms in (False, True)
    },
    (State.SENT, True): Event.SEND_SMS,
    (State.SENT, False): Event.SEND_EMAIL,
}
