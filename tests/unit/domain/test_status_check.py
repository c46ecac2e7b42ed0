"""When a send without a final status is looked up, how long until the next look, when to give up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.status_check import Answer, Apply, GiveUp, LookAgain, StatusCheckPolicy, Step

SENT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
POLICY = StatusCheckPolicy(after_s=900, max_age_s=48 * 3600, cap_s=3600)


def at(seconds: float) -> datetime:
    return SENT + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("now_s", "due"),
    [(0, False), (899.999, False), (900, True), (901, True), (10 * 86_400, True)],
)
def test_a_send_is_first_looked_up_after_after_s(now_s: float, due: bool) -> None:
    assert POLICY.first_look_at(SENT) == at(900)
    assert POLICY.due(SENT, at(now_s)) is due


@pytest.mark.parametrize(
    ("checks", "delay"),
    [(1, 900), (2, 1800), (3, 3600), (4, 3600), (50, 3600), (10_000, 3600)],
)
def test_the_wait_between_looks_doubles_up_to_the_cap(checks: int, delay: float) -> None:
    assert POLICY.delay(checks) == delay


def test_a_delay_follows_a_look() -> None:
    with pytest.raises(ValueError, match=r"^checks must be >= 1: a delay follows a look$"):
        POLICY.delay(0)


@pytest.mark.parametrize(
    ("answer", "now_s", "checks", "step"),
    [
        # a final answer is applied, whatever the age
        (Answer.DELIVERED, 900, 1, Apply(delivered=True)),
        (Answer.UNDELIVERED, 900, 1, Apply(delivered=False)),
        (Answer.DELIVERED, 48 * 3600 + 1, 60, Apply(delivered=True)),
        # not final: look again with backoff
        (Answer.PENDING, 900, 1, LookAgain(900)),
        (Answer.PENDING, 1800, 2, LookAgain(1800)),
        (Answer.NOT_FOUND, 3600, 3, LookAgain(3600)),
        (Answer.ERROR, 7200, 9, LookAgain(3600)),
        # the last look falls exactly at the maximum age, never past it
        (Answer.PENDING, 48 * 3600 - 600, 40, LookAgain(600)),
        (Answer.PENDING, 48 * 3600 - 0.5, 40, LookAgain(0.5)),
        # at or past the maximum age: give up
        (Answer.PENDING, 48 * 3600, 41, GiveUp()),
        (Answer.NOT_FOUND, 48 * 3600 + 5, 41, GiveUp()),
        (Answer.ERROR, 30 * 86_400, 1, GiveUp()),
    ],
)
def test_what_follows_an_answer(answer: Answer, now_s: float, checks: int, step: Step) -> None:
    assert POLICY.after(answer, sent_at=SENT, now=at(now_s), checks=checks) == step


def test_a_send_is_never_given_up_before_its_maximum_age() -> None:
    """Walk one send that stays pending: looks at 15, 30, 60 min... hourly, the last at 48 h."""
    now, checks, looks = POLICY.first_look_at(SENT), 0, []
    while True:
        checks += 1
        looks.append(now)
        step = POLICY.after(Answer.PENDING, sent_at=SENT, now=now, checks=checks)
        if isinstance(step, GiveUp):
            break
        assert isinstance(step, LookAgain)
        now += timedelta(seconds=step.after_s)
    assert looks[:4] == [at(900), at(1800), at(3600), at(7200)]
    assert looks[-1] == at(48 * 3600)
    assert len(looks) == 50  # bounded: at most about one look an hour


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"after_s": 0}, "after_s and cap_s must be > 0"),
        ({"cap_s": 0}, "after_s and cap_s must be > 0"),
        ({"after_s": 900, "max_age_s": 600}, "max_age_s must be >= after_s"),
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        StatusCheckPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"after_s": 0.5, "max_age_s": 0.5, "cap_s": 0.5}, {"after_s": 900, "max_age_s": 900}]
)
def test_the_smallest_policies_are_allowed(kwargs: dict[str, float]) -> None:
    StatusCheckPolicy(**kwargs)
