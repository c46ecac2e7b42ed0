"""promtool (Prometheus' own checker) for the tests: the one ``deploy/lint/promtool.sh`` finds or installs."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@cache
def promtool() -> str:
    found = subprocess.run(
        [str(ROOT / "deploy" / "lint" / "promtool.sh")], check=True, capture_output=True, text=True
    )
    return found.stdout.strip().splitlines()[-1]


def check_metrics(exposition: bytes) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on a scrape: exit 0 and no output when it finds nothing to say."""
    return subprocess.run(
        [promtool(), "check", "metrics"],
        input=exposition.decode(),
        capture_output=True,
        text=True,
        check=False,
    )
