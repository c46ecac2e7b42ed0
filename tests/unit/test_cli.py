"""The ``notifier`` command line: subcommands with their own options, help everywhere, ``--version``,
and one line naming the fix (exit 2, no traceback) when a dependency is unreachable or a file is missing."""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from service import cli
from service.privacy.crypto import Keyring

NOTIFIER = [sys.executable, "-m", "service"]


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"notifier {metadata.version('milestone-notifier')}"


@pytest.mark.parametrize(
    ("argv", "has", "has_not"),
    [
        (["keys", "rotate"], ["--dry-run"], ["--kind", "--id"]),
        (["keys", "generate"], ["--kind", "--id"], ["--dry-run"]),
        (
            ["dlq", "list"],
            ["--reason", "--partition", "--from-offset", "--to-offset"],
            ["--yes", "--dry-run"],
        ),
        (["dlq", "replay"], ["--reason", "--partition", "--yes", "--dry-run"], []),
        (["schemas", "check"], ["--dir"], []),
    ],
)
def test_each_action_is_a_subcommand_with_its_own_options(
    capsys: pytest.CaptureFixture[str], argv: list[str], has: list[str], has_not: list[str]
) -> None:
    text = _help(capsys, *argv)
    assert f"usage: notifier {' '.join(argv)}" in text
    for flag in has:
        assert flag in text
    for flag in has_not:
        assert flag not in text


def _parsers(
    parser: argparse.ArgumentParser, path: str = "notifier"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, parser in _parsers(cli._parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


@pytest.mark.parametrize(
    "line",
    [  # as written in the README, the Makefile and deploy/
        "keys generate --kind env --id local1",
        "keys generate",
        "keys rotate --dry-run",
        "dlq list",
        "dlq replay --reason invalid_event --from-offset 3 --to-offset 9 --dry-run",
        "dlq replay --yes",
        "schemas check",
        "schemas export",
        "feed",
        "feed deploy/samples/events.jsonl --topic t",
        "demo",
        "db migrate",
        "templates check",
        "sandbox --port 18700",
    ],
)
def test_documented_command_lines_still_parse(line: str) -> None:
    cli._parser().parse_args(shlex.split(line))


def test_feed_and_demo_default_to_the_packaged_sample_events() -> None:
    assert cli._events_file(None).is_file()
    assert cli._events_file(None).read_text(encoding="utf-8").strip()


def _notifier(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    environ |= {"NOTIFIER_LOG_LEVEL": "WARNING", "PYTHONPATH": str(Path(__file__).parents[2])} | env
    return subprocess.run(
        [*NOTIFIER, *argv], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def _one_line_naming_the_fix(run: subprocess.CompletedProcess[str], *words: str) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "Unclosed" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("notifier: ")
    for word in words:
        assert word in lines[0]


def test_a_missing_feed_file_is_one_line(tmp_path: Path) -> None:
    run = _notifier(tmp_path, "feed", "missing.jsonl", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}")
    _one_line_naming_the_fix(run, "no such file: missing.jsonl", "JSON-lines")


@pytest.mark.parametrize("argv", [["topics"], ["feed"], ["dlq", "list"], ["dlq", "replay", "--yes"]])
def test_an_unreachable_broker_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    servers = f"127.0.0.1:{_closed_port()}"
    run = _notifier(tmp_path, *argv, KAFKA_BOOTSTRAP_SERVERS=servers)
    _one_line_naming_the_fix(run, f"cannot reach Kafka at {servers}", "NOTIFIER_KAFKA_BOOTSTRAP_SERVERS")


@pytest.mark.parametrize(
    "argv",
    [
        ["db", "migrate"],
        ["purge", "--dry-run"],
        ["staff", "add", "--name", "x", "--role", "admin"],
        ["keys", "rotate"],
    ],
)
def test_an_unreachable_database_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    url = f"postgresql://notifier@127.0.0.1:{_closed_port()}/notifier"
    keys = {"NOTIFIER_PII_KEYS": Keyring.generate_spec("k1"), "NOTIFIER_BLIND_INDEX_KEY": "A" * 43 + "="}
    run = _notifier(tmp_path, *argv, DATABASE_URL=url, **keys)
    _one_line_naming_the_fix(run, "cannot reach PostgreSQL", "NOTIFIER_DATABASE_URL")


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = _notifier(tmp_path, "sandbox", "--port", str(port))
    _one_line_naming_the_fix(run, "port in use", "--port")


def test_a_database_that_refuses_a_statement_is_not_called_unreachable() -> None:
    from service.domain.errors import StoreUnavailable
    from service.settings import Settings

    refused = StoreUnavailable("database: InsufficientPrivilegeError")
    refused.__cause__ = RuntimeError("permission denied")
    assert cli.unreachable_hint(refused, Settings()) is None
    assert cli.unreachable_hint(OSError(13, "Permission denied"), Settings()) is None


@pytest.mark.parametrize("by", ["", " amy", "amy\n", "x" * 65, "amy\x1b[31m"])
def test_an_operator_name_that_could_not_be_audited_as_given_is_refused(
    by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the name goes into the consent history, each decision's snapshot and the audit log's actor
    with pytest.raises(SystemExit) as done:
        cli._parser().parse_args(["optout", "--phone", "-", "--by", by])
    assert done.value.code == 2
    assert "--by" in capsys.readouterr().err
    assert cli._parser().parse_args(["optout", "--phone", "-", "--by", "ticket-1234"]).by == "ticket-1234"
