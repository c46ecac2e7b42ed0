"""The backup scripts keep the database password off every command line (``ps`` shows argv to all).

Fake ``pg_dump``, ``pg_restore`` and ``psql`` on PATH record the argv they were started with and the
password file they were given.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE = """#!/usr/bin/env bash
{{ echo "argv: $0 $*"; echo "passfile: $(cat "${{PGPASSFILE:-/dev/null}}")"; \
   echo "mode: $(stat -c %a "${{PGPASSFILE:-/dev/null}}")"; }} >>"{log}"
for a in "$@"; do case $a in --file=*) echo dump >"${{a#--file=}}";; esac; done
[ "$(basename "$0")" = psql ] && echo f
exit 0
"""


def _fake_tools(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("pg_dump", "pg_restore", "psql"):
        path = bin_dir / tool
        path.write_text(FAKE.format(log=log))
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    env.pop("NOTIFIER_DATABASE_URL", None)
    return env, log


def test_backup_passes_the_password_in_a_private_passfile_not_in_argv(tmp_path: Path) -> None:
    env, log = _fake_tools(tmp_path)
    env["DATABASE_URL"] = "postgresql://notifier:s3cr%3At%40pw@db.internal:5432/notifier?sslmode=require"
    run = subprocess.run(
        [str(REPO / "deploy/backup/backup.sh"), str(tmp_path / "x.dump")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    calls = log.read_text()
    argv = [line for line in calls.splitlines() if line.startswith("argv: ")]
    assert any(
        "pg_dump" in a and "postgresql://notifier@db.internal:5432/notifier?sslmode=require" in a
        for a in argv
    )
    assert not any("s3cr" in a for a in argv)
    assert "passfile: *:*:*:*:s3cr\\:t@pw" in calls  # decoded, ':' escaped as libpq wants
    assert "mode: 600" in calls
    assert list(tmp_path.glob("notifier-pgpass.*")) == []  # removed on exit


def test_restore_passes_the_password_in_a_passfile_too(tmp_path: Path) -> None:
    env, log = _fake_tools(tmp_path)
    env["TARGET_DATABASE_URL"] = "postgresql://owner:hunter2@db.internal/fresh"
    run = subprocess.run(
        [str(REPO / "deploy/backup/restore.sh"), str(tmp_path / "x.dump")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = log.read_text()
    assert "hunter2" not in "".join(line for line in calls.splitlines() if line.startswith("argv: "))
    assert "passfile: *:*:*:*:hunter2" in calls
    assert run.returncode == 0, run.stderr
