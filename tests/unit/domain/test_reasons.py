"""The reasons' vocabulary: fixed codes, and a provider's word as ``<provider>_<what>``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from service.domain import reasons


@pytest.mark.parametrize(
    ("reason", "split"),
    [
        ("twilio_30003", ("twilio", "30003")),
        ("infobip_EC_ABSENT_SUBSCRIBER", ("infobip", "EC_ABSENT_SUBSCRIBER")),
        ("sendgrid_circuit_open", ("sendgrid", reasons.CIRCUIT_OPEN)),
        ("twilio_", None),
        ("phone_invalid", None),
        (reasons.STALE, None),
        ("unknown_30003", None),
    ],
)
def test_split_provider_reason(reason: str, split: tuple[str, str] | None) -> None:
    assert reasons.split_provider_reason(reason) == split


def test_a_provider_reason_splits_back_into_its_parts() -> None:
    for provider in reasons.PROVIDERS:
        for what in (*reasons.PROVIDER_CONDITIONS, "21610"):
            assert reasons.split_provider_reason(reasons.provider_reason(provider, what)) == (provider, what)


def test_no_fixed_code_reads_as_a_provider_reason() -> None:
    assert all(reasons.split_provider_reason(r) is None for r in reasons.FIXED)


SERVICE = Path(__file__).resolve().parents[3] / "service"
#: Calls whose first argument is an outcome's reason.
_REASON_FIRST = {"Blocked", "_Trail"}


def _written_reasons(tree: ast.AST) -> list[str]:
    """Reasons written as text (a string or an f-string) rather than from ``domain.reasons``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or ast.unparse(node.func).startswith("log."):
            continue  # a log event's reason is no outcome's
        values = [kw.value for kw in node.keywords if kw.arg in ("reason", "failed")]
        if ast.unparse(node.func) in _REASON_FIRST and node.args:
            values.append(node.args[0])
        found += [
            ast.unparse(v)
            for v in values
            if isinstance(v, ast.JoinedStr) or (isinstance(v, ast.Constant) and isinstance(v.value, str))
        ]
    return found


def test_outcome_reasons_are_written_only_from_the_vocabulary() -> None:
    """So the support page's labels (which enumerate ``domain.reasons``) cover every reason."""
    written = {
        str(p.relative_to(SERVICE)): found
        for p in SERVICE.rglob("*.py")
        if p.name != "reasons.py" and (found := _written_reasons(ast.parse(p.read_text(encoding="utf-8"))))
    }
    assert written == {}


def test_the_guard_sees_a_reason_written_as_text() -> None:
    tree = ast.parse('Outcome(reason="new_reason")\nBlocked(f"{name}_x")\nlog.info("e", reason="fine")')
    assert _written_reasons(tree) == ["'new_reason'", "f'{name}_x'"]
