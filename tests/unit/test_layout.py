"""The package's shape, as issue 12 set it: one name per module, and the stages as folders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
#: The sandbox mirrors the provider clients it stands in for, file for file.
MIRRORS = {"twilio.py", "infobip.py", "sendgrid.py"}


def test_no_two_modules_share_a_file_name() -> None:
    names = Counter(p.name for p in SERVICE.rglob("*.py") if p.name != "__init__.py")
    shared = {name for name, n in names.items() if n > 1}
    assert shared <= MIRRORS, sorted(shared - MIRRORS)


def test_the_mirrors_are_only_the_sandbox_and_the_clients() -> None:
    for name in MIRRORS:
        homes = sorted(str(p.parent.relative_to(SERVICE)) for p in SERVICE.rglob(name))
        assert homes == ["sandbox", "send/providers"]


def test_the_stages_are_folders_in_the_order_a_notification_meets_them() -> None:
    for stage in ("intake", "dedup", "compose", "send", "report", "pipeline"):
        assert (SERVICE / stage / "__init__.py").read_text().strip(), f"{stage}/ says what it is"
