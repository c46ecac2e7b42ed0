"""The notification life cycle as data: every allowed move, every refused one, and the places that
must say the same (the receipt's schema, the database's CHECK constraint)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest

from service.contracts import ReceiptOutcome, json_schemas
from service.domain.lifecycle import (
    HELD_NOTIFICATION,
    HELD_REPORT,
    RECEIPT_OUTCOMES,
    TRANSITIONS,
    Duty,
    Event,
    IllegalTransition,
    State,
    can_move,
    decided,
    reported,
    transition,
)
from service.store.migrate import migration_files

C, S, U = State.CLAIMED, State.SENT, State.UNDELIVERED
R, RC = Duty.RECORD, Duty.RECEIPT
Q, DS = State.SCHEDULED, Duty.DROP_SCHEDULE

#: The life cycle, written out again by hand: (from, event) -> (to, what the move owes).
ALLOWED: dict[tuple[State | None, Event], tuple[State, set[Duty]]] = {
    (None, Event.CLAIM): (C, set()),
    (C, Event.RECLAIM): (C, {Duty.LOOK_UP_EARLIER_SEND}),
    (C, Event.HOLD): (C, {Duty.GIVE_BACK_CLAIM}),
    (C, Event.STALE): (State.SUPPRESSED_STALE, {R, RC}),
    (C, Event.OPT_OUT): (State.SUPPRESSED_OPTED_OUT, {R, RC}),
    (C, Event.INVALID_RECIPIENT): (State.SUPPRESSED_INVALID_RECIPIENT, {R, RC}),
    (C, Event.FAIL): (State.FAILED, {R, RC}),
    (C, Event.SEND_SMS): (S, {R, RC, Duty.SEAL_EVENT, Duty.AWAIT_REPORT}),
    (C, Event.SEND_EMAIL): (S, {R, RC, Duty.SEAL_EVENT}),
    (S, Event.REPORT_DELIVERED): (State.DELIVERED, {R, RC}),
    (S, Event.REPORT_SMS_UNDELIVERED): (U, {R, RC, Duty.OWE_FALLBACK}),
    (S, Event.REPORT_EMAIL_UNDELIVERED): (U, {R, RC}),
    (U, Event.SEND_EMAIL): (S, {R, RC, Duty.SETTLE_FALLBACK}),
    (U, Event.FAIL): (State.FAILED, {R, RC, Duty.SETTLE_FALLBACK}),
    (U, Event.OPT_OUT): (State.SUPPRESSED_OPTED_OUT, {R, RC, Duty.SETTLE_FALLBACK}),
    (U, Event.FALLBACK_HELD): (U, {Duty.RETRY_FALLBACK}),
    (U, Event.FALLBACK_DROPPED): (U, {Duty.SETTLE_FALLBACK}),
    # quiet hours and coalescing
    (C, Event.SCHEDULE): (Q, {R, RC, Duty.SEAL_EVENT, Duty.SCHEDULE_SEND}),
    (Q, Event.RECLAIM): (Q, {Duty.LOOK_UP_EARLIER_SEND}),
    (Q, Event.HOLD): (Q, set()),
    (Q, Event.SUPERSEDE): (State.SUPPRESSED_SUPERSEDED, {R, RC, DS}),
    (C, Event.SUPERSEDE): (State.SUPPRESSED_SUPERSEDED, {R, RC}),
    (Q, Event.OPT_OUT): (State.SUPPRESSED_OPTED_OUT, {R, RC, DS}),
    (Q, Event.INVALID_RECIPIENT): (State.SUPPRESSED_INVALID_RECIPIENT, {R, RC, DS}),
    (Q, Event.FAIL): (State.FAILED, {R, RC, DS}),
    (Q, Event.SEND_SMS): (S, {R, RC, Duty.AWAIT_REPORT, DS}),
    (Q, Event.SEND_EMAIL): (S, {R, RC, DS}),
    # pilot mode: decided and receipted, never sent; the fallback's address not allow-listed
    (C, Event.PILOT): (State.SUPPRESSED_PILOT, {R, RC}),
    (U, Event.PILOT): (State.SUPPRESSED_PILOT, {R, RC, Duty.SETTLE_FALLBACK}),
}
SOURCES: list[State | None] = [None, *State]
REFUSED = [(s, e) for s in SOURCES for e in Event if (s, e) not in ALLOWED]


@pytest.mark.parametrize(("source", "event"), list(ALLOWED), ids=str)
def test_every_allowed_move_reaches_its_state_and_owes_its_duties(source: State | None, event: Event) -> None:
    move = transition(source, event)
    assert (move.source, move.event) == (source, event)
    assert (move.target, set(move.owes)) == ALLOWED[(source, event)]


def test_the_table_holds_exactly_the_allowed_moves_once_each() -> None:
    assert sorted((t.source or "", t.event) for t in TRANSITIONS) == sorted((s or "", e) for s, e in ALLOWED)


@pytest.mark.parametrize(("source", "event"), REFUSED, ids=str)
def test_every_other_move_is_refused(source: State | None, event: Event) -> None:
    where = source.value if source else "no row"
    with pytest.raises(IllegalTransition, match=f"^{event.value} is not allowed from {where}$"):
        transition(source, event)


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        (None, C, True),
        (None, S, False),
        (C, C, True),
        (C, S, True),
        (C, State.FAILED, True),
        (C, State.SUPPRESSED_STALE, True),
        (C, State.DELIVERED, False),  # only a report on a send delivers
        (C, U, False),
        (S, State.DELIVERED, True),
        (S, U, True),
        (S, State.FAILED, False),  # a send is never turned into a failure
        (S, C, False),
        (U, S, True),  # the email fallback
        (U, State.FAILED, True),
        (U, State.SUPPRESSED_OPTED_OUT, True),
        (U, State.DELIVERED, False),
        (U, State.SUPPRESSED_STALE, False),
        (State.DELIVERED, U, False),  # final states stay final
        (State.FAILED, S, False),
        (State.SUPPRESSED_OPTED_OUT, S, False),
        (State.SUPPRESSED_STALE, C, False),
        (State.SUPPRESSED_INVALID_RECIPIENT, S, False),
        (C, Q, True),  # quiet hours
        (Q, S, True),
        (Q, State.SUPPRESSED_SUPERSEDED, True),
        (C, State.SUPPRESSED_SUPERSEDED, True),  # a backlog coalesced
        (S, Q, False),
        (State.SUPPRESSED_SUPERSEDED, S, False),
    ],
)
def test_can_move(source: State | None, target: State, allowed: bool) -> None:
    assert can_move(source, target) is allowed


def test_final_states_have_no_way_out() -> None:
    final = {State.DELIVERED, State.FAILED, *(s for s in State if s.startswith("suppressed_"))}
    assert all(t.source not in final for t in TRANSITIONS)
    assert {t.target for t in TRANSITIONS} == set(State)  # every state is reachable


@pytest.mark.parametrize(
    ("outcome", "channel", "event"),
    [
        ("sent", "sms", Event.SEND_SMS),
        ("sent", "email", Event.SEND_EMAIL),
        ("failed", "none", Event.FAIL),
        ("failed", "email", Event.FAIL),
        ("suppressed_stale", "none", Event.STALE),
        ("suppressed_opted_out", "none", Event.OPT_OUT),
        ("suppressed_invalid_recipient", "none", Event.INVALID_RECIPIENT),
        ("suppressed_pilot", "none", Event.PILOT),
        ("held", "none", Event.HOLD),
        ("scheduled", "none", Event.SCHEDULE),
        ("suppressed_superseded", "none", Event.SUPERSEDE),
    ],
)
def test_an_attempts_outcome_is_an_event(outcome: str, channel: str, event: Event) -> None:
    assert decided(outcome, channel) is event


@pytest.mark.parametrize(
    ("outcome", "channel"),
    [("delivered", "sms"), ("undelivered", "sms"), ("claimed", "none"), ("queued", "sms")],
)
def test_an_outcome_no_attempt_reaches_is_refused(outcome: str, channel: str) -> None:
    with pytest.raises(IllegalTransition):
        decided(outcome, channel)


@pytest.mark.parametrize(
    ("delivered", "channel", "event"),
    [
        (True, "sms", Event.REPORT_DELIVERED),
        (True, "email", Event.REPORT_DELIVERED),
        (False, "sms", Event.REPORT_SMS_UNDELIVERED),
        (False, "email", Event.REPORT_EMAIL_UNDELIVERED),
        (False, "none", Event.REPORT_EMAIL_UNDELIVERED),  # only an SMS owes a fallback
    ],
)
def test_a_report_is_an_event(delivered: bool, channel: str, event: Event) -> None:
    assert reported(delivered=delivered, channel=channel) is event


def test_the_values_stored_and_published_stay_as_they_were() -> None:
    assert [s.value for s in State] == [
        "claimed",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "suppressed_invalid_recipient",
        "suppressed_opted_out",
        "suppressed_stale",
        "suppressed_pilot",
        "scheduled",
        "suppressed_superseded",
    ]
    assert f"{State.SENT}" == str(State.SENT) == "sent"  # what SQL, metrics and receipt ids see
    assert (HELD_NOTIFICATION, HELD_REPORT) == ("held", "held")  # results, not states
    assert HELD_NOTIFICATION not in set(State)


def test_receipts_report_every_state_but_claimed_as_the_schema_says() -> None:
    assert tuple(s for s in State if s is not State.CLAIMED) == RECEIPT_OUTCOMES
    assert get_args(ReceiptOutcome) == RECEIPT_OUTCOMES
    schema = json_schemas()["notification-receipt.v1.json"]
    assert schema["properties"]["outcome"]["enum"] == [s.value for s in RECEIPT_OUTCOMES]  # type: ignore[index]
    published = json.loads(
        (Path(__file__).parents[3] / "schemas" / "notification-receipt.v1.json").read_text()
    )
    assert published["properties"]["outcome"]["enum"] == [s.value for s in RECEIPT_OUTCOMES]


def test_the_databases_check_constraint_allows_exactly_the_states() -> None:
    checks = [
        sql for _, sql in migration_files() if re.search(r"ADD CONSTRAINT notifications_state_check", sql)
    ]
    assert len(checks) >= 1  # each later one drops the constraint and redefines it with every state
    assert all("DROP CONSTRAINT notifications_state_check" in sql for sql in checks[1:])
    listed = re.search(r"CHECK \(state IN \((.*?)\)\)", checks[-1], re.DOTALL)
    assert listed is not None
    assert re.findall(r"'([a-z_]+)'", listed.group(1)) == [s.value for s in State]
