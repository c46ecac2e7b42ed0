"""The guard of every command that destroys or re-sends: ``--dry-run`` and ``--yes``, in one place.

A guarded command first works out what it would do (with counts), then ``confirm``:

- with ``--dry-run`` prints that and returns False: the command stops, nothing changed;
- with ``--yes`` returns True;
- on a terminal shows it and asks; only the answer ``yes`` goes ahead;
- otherwise (a script, a pipe, cron, CI) refuses, naming ``--yes``.

Personal values an operator types (a phone number, an email address) are read by ``read_value``
from a no-echo prompt or from standard input, never from the command line, where the process
list and the shell history would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from service.domain.errors import CommandRefused

STDIN = "-"
_MAX_VALUE = 320  # the longest email address; a phone is far shorter


def add_guard_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help=f"show what it would {what} (counts), change nothing"
    )
    parser.add_argument(
        "--yes", action="store_true", help="go ahead without asking (required when not run on a terminal)"
    )


def interactive(stream: TextIO | None = None) -> bool:
    """Whether the operator is on a terminal (standard input is a TTY)."""
    stream = sys.stdin if stream is None else stream
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed, detached, or a test's stand-in
        return False


def confirm(
    plan: str,
    *,
    dry_run: bool,
    yes: bool,
    ask: Callable[[str], str] | None = None,
) -> bool:
    """Whether to go ahead with ``plan`` (e.g. "destroy 3 sealed event(s) of order X")."""
    if dry_run:
        print(f"dry run, nothing changed: would {plan}")
        return False
    if yes:
        return True
    if ask is None:
        if not interactive():
            raise CommandRefused(
                f"refusing to {plan}: not run on a terminal, so it needs --yes to confirm "
                "(or --dry-run to only see the counts); nothing changed"
            )
        ask = input
    try:
        answer = ask(f"This will {plan}.\nType yes to go ahead: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() != "yes":
        raise CommandRefused("not confirmed; nothing changed")
    return True


def read_value(option: str, given: str, *, label: str, stdin: TextIO | None = None) -> str:
    """The value of a personal option (``--phone``, ``--email``): from a prompt or standard input.

    ``given`` is what the command line had: only ``-`` (or the option alone) is accepted, so the
    value itself never has to be on the command line.
    """
    if given != STDIN:
        raise CommandRefused(
            f"{option} does not take the value on the command line (the process list and the shell "
            f"history would keep it): give {option} alone and type it at the prompt, or pipe it in, "
            f"e.g. `printf '%s\\n' \"$VALUE\" | notifier ... {option} -`"
        )
    stream = sys.stdin if stdin is None else stdin
    if interactive(stream):
        value = getpass.getpass(f"{label} (not echoed): ")
    else:
        value = stream.readline(_MAX_VALUE + 2)
    value = value.strip()
    if not value:
        raise CommandRefused(f"{option}: no {label} given on standard input")
    if len(value) > _MAX_VALUE:
        raise CommandRefused(f"{option}: the {label} is too long")
    return value
