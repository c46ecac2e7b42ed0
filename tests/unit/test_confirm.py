"""The guard of destructive commands: dry run, --yes, the question on a terminal, refusal otherwise."""

from __future__ import annotations

import io

import pytest

from service import confirm as guard
from service.domain.errors import CommandRefused


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_dry_run_prints_the_plan_and_never_goes_ahead(capsys: pytest.CaptureFixture[str]) -> None:
    assert guard.confirm("destroy 3 sealed event(s)", dry_run=True, yes=True) is False
    assert capsys.readouterr().out == "dry run, nothing changed: would destroy 3 sealed event(s)\n"


def test_yes_goes_ahead_without_asking() -> None:
    def never(_: str) -> str:
        raise AssertionError("asked")

    assert guard.confirm("destroy", dry_run=False, yes=True, ask=never) is True


def test_without_a_terminal_it_refuses_naming_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # piped "yes" is not a confirmation
    with pytest.raises(CommandRefused, match="--yes"):
        guard.confirm("destroy 3 sealed event(s)", dry_run=False, yes=False)


@pytest.mark.parametrize(("answer", "goes"), [("yes", True), ("YES ", True), ("y", False), ("", False)])
def test_on_a_terminal_it_asks_and_only_yes_goes_ahead(
    monkeypatch: pytest.MonkeyPatch, answer: str, goes: bool
) -> None:
    monkeypatch.setattr("sys.stdin", Tty())
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return answer

    monkeypatch.setattr("builtins.input", ask)
    if goes:
        assert guard.confirm("destroy 3 sealed event(s)", dry_run=False, yes=False) is True
    else:
        with pytest.raises(CommandRefused, match="not confirmed"):
            guard.confirm("destroy 3 sealed event(s)", dry_run=False, yes=False)
    assert asked == ["This will destroy 3 sealed event(s).\nType yes to go ahead: "]


def test_a_closed_terminal_is_no_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    def eof(_: str) -> str:
        raise EOFError

    with pytest.raises(CommandRefused):
        guard.confirm("destroy", dry_run=False, yes=False, ask=eof)


def test_personal_values_come_from_standard_input_or_a_no_echo_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (
        guard.read_value("--phone", "-", label="phone number", stdin=io.StringIO(" 9123 4567\n"))
        == "9123 4567"
    )
    monkeypatch.setattr("getpass.getpass", lambda prompt: "a@example.com")
    assert guard.read_value("--email", "-", label="email address", stdin=Tty()) == "a@example.com"
    with pytest.raises(CommandRefused, match="command line") as refused:
        guard.read_value("--phone", "91234567", label="phone number")
    assert "91234567" not in str(refused.value)
    with pytest.raises(CommandRefused):
        guard.read_value("--phone", "-", label="phone number", stdin=io.StringIO(""))
