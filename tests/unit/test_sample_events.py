"""The sample feed (deploy/samples/events.jsonl, shipped in the package as service/samples/) against
the published input schema: every line valid, except the two that are there to show dead-lettering,
which fail for their reason, in the schema and in the service alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from service.contracts import parse_event
from service.domain.errors import EventRejected
from service.resources import sample_events

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "schemas" / "shipment-status-event.v1.json").read_text(encoding="utf-8"))
NOW = datetime(2026, 12, 1, tzinfo=UTC)  # after the samples' dates: none is "in the future"

#: The lines (1-based, as in the file) that must fail, and how: a value that is not JSON, or the
#: schema's errors as (validator, path) pairs, the path ``/`` separated.
INVALID: dict[int, tuple[str, str | set[tuple[str, str]]]] = {
    7: ("malformed_json", "not JSON"),  # a line cut short
    9: ("invalid_event", {("required", "waybill"), ("required", "bike_model"), ("required", "recipient")}),
}
FEEDS = {"deploy/samples": REPO / "deploy" / "samples" / "events.jsonl", "package": sample_events()}


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _schema_errors(validator: jsonschema.protocols.Validator, event: object) -> set[tuple[str, str]]:
    """(validator, where) per error; for a missing property, where is the property's name."""
    found = set()
    for e in validator.iter_errors(event):
        where = "/".join(str(p) for p in e.absolute_path)
        if e.validator == "required":
            where = "/".join([*([where] if where else []), str(e.message).split("'")[1]])
        found.add((str(e.validator), where))
    return found


def test_the_packaged_samples_are_the_repositorys() -> None:
    assert FEEDS["package"].read_bytes() == FEEDS["deploy/samples"].read_bytes()


@pytest.mark.parametrize("feed", sorted(FEEDS))
def test_every_sample_line_is_a_valid_event_except_the_dead_letter_examples(feed: str) -> None:
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    lines = _lines(FEEDS[feed])
    assert len(lines) > len(INVALID)
    failing: dict[int, tuple[str, str | set[tuple[str, str]]]] = {}
    for n, line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            failing[n] = ("malformed_json", "not JSON")
            continue
        errors = _schema_errors(validator, event)
        if errors:
            failing[n] = ("invalid_event", errors)
    assert failing == INVALID


@pytest.mark.parametrize(("n", "line"), _lines(FEEDS["deploy/samples"]))
def test_the_service_agrees_with_the_schema_on_each_sample_line(n: int, line: str) -> None:
    reason = None
    try:
        parse_event(line.encode(), now=NOW)
    except EventRejected as exc:
        reason = exc.reason
    assert reason == (INVALID[n][0] if n in INVALID else None)


def _json_lines() -> list[tuple[int, object]]:
    out = []
    for n, line in _lines(FEEDS["deploy/samples"]):
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError:
            continue  # no schema verdict to compare: checked by the tests above
    return out


@pytest.mark.parametrize(("n", "event"), _json_lines())
def test_draft_07_reads_each_sample_as_draft_2020_12_does(n: int, event: object) -> None:
    """AsyncAPI 3.0 reads payload schemas as draft-07: the verdict must not depend on the dialect."""
    verdicts = [
        {(e.validator, tuple(e.absolute_path)) for e in cls(SCHEMA).iter_errors(event)}
        for cls in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator)
    ]
    assert verdicts[0] == verdicts[1]
    assert bool(verdicts[0]) == (n in INVALID)
