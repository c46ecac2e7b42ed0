"""The recipient lists' verdict on one notification (pilot mode, a marked number), as a table, and
when a delivery report marks a number."""

from __future__ import annotations

import pytest

from service.domain import reasons
from service.domain.lifecycle import State
from service.domain.screening import OPEN, MarkedBy, NumberPolicy, Screen, Verdict, screen_verdict

PILOT = Screen(pilot=True, mobile=True)
SENT_AS_IS = Verdict()
EMAIL_ONLY_PILOT = Verdict(reason=reasons.PILOT_PHONE_NOT_LISTED, email_only=True)
NOT_LISTED = Verdict(State.SUPPRESSED_PILOT, reasons.PILOT_NOT_LISTED)
MARKED_EMAIL = Verdict(reason=reasons.BAD_NUMBER, email_only=True)
MARKED_NOTHING = Verdict(State.SUPPRESSED_INVALID_RECIPIENT, reasons.BAD_NUMBER)


@pytest.mark.parametrize(
    ("screen", "has_email", "email_only", "verdict"),
    [
        # no list applies: as before
        (OPEN, True, False, SENT_AS_IS),
        (Screen(mobile=True), False, False, SENT_AS_IS),
        # pilot mode: only listed contacts are used
        (PILOT, True, False, NOT_LISTED),
        (PILOT, False, False, NOT_LISTED),
        (Screen(pilot=True), True, False, NOT_LISTED),  # no valid mobile, the address not listed
        (Screen(pilot=True, mobile=True, phone_listed=True), True, False, Verdict(drop_email=True)),
        (Screen(pilot=True, mobile=True, phone_listed=True), False, False, SENT_AS_IS),
        (Screen(pilot=True, mobile=True, email_listed=True), True, False, EMAIL_ONLY_PILOT),
        (Screen(pilot=True, mobile=True, phone_listed=True, email_listed=True), True, False, SENT_AS_IS),
        (Screen(pilot=True, email_listed=True), True, False, SENT_AS_IS),  # an invalid number: email as ever
        # pilot mode, the email fallback of an SMS to a listed phone
        (Screen(pilot=True, mobile=True, phone_listed=True), True, True, NOT_LISTED),
        (Screen(pilot=True, mobile=True, phone_listed=True, email_listed=True), True, True, SENT_AS_IS),
        # nothing to send to at all: not pilot mode's to decide
        (Screen(pilot=True), False, False, SENT_AS_IS),
        # a marked number: email, or nothing
        (Screen(mobile=True, number_marked=True), True, False, MARKED_EMAIL),
        (Screen(mobile=True, number_marked=True), False, False, MARKED_NOTHING),
        (Screen(mobile=True, number_marked=True), True, True, SENT_AS_IS),  # the fallback is email anyway
        # both: a listed number that is marked goes to a listed address, else nowhere
        (
            Screen(pilot=True, mobile=True, phone_listed=True, email_listed=True, number_marked=True),
            True,
            False,
            MARKED_EMAIL,
        ),
        (Screen(pilot=True, mobile=True, phone_listed=True, number_marked=True), True, False, MARKED_NOTHING),
    ],
)
def test_the_lists_verdict(screen: Screen, has_email: bool, email_only: bool, verdict: Verdict) -> None:
    assert screen_verdict(screen, has_email=has_email, email_only=email_only) == verdict


@pytest.mark.parametrize(
    ("permanent", "streak", "marked"),
    [
        (True, 1, MarkedBy.PERMANENT_REPORT),
        (False, 1, None),
        (False, 2, None),
        (False, 3, MarkedBy.REPEATED_UNDELIVERED),
        (False, 7, MarkedBy.REPEATED_UNDELIVERED),
    ],
)
def test_an_undelivered_report_marks_its_number_when_permanent_or_the_last_of_a_streak(
    permanent: bool, streak: int, marked: MarkedBy | None
) -> None:
    assert NumberPolicy(3).marks(permanent=permanent, streak=streak) is marked


def test_one_undelivered_report_may_be_enough() -> None:
    assert NumberPolicy(1).marks(permanent=False, streak=1) is MarkedBy.REPEATED_UNDELIVERED
    with pytest.raises(ValueError, match="at least 1"):
        NumberPolicy(0)
