"""The exposition tells the truth from the first scrape: every series an alert selects exists at 0,
gauges of the present are computed when scraped, and promtool finds nothing wrong with it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from service.config.sending import SendingSettings
from service.http.server import create_app
from service.metrics import DECISIONS, Metrics
from service.resources import version
from tests.promtool import check_metrics

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yaml"
SELECTOR_RE = re.compile(r"\b(notifier_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
SMS, EMAIL = ["twilio", "infobip"], ["sendgrid"]


def _started() -> Metrics:
    """A Metrics as the composition root leaves it at start-up, before any event."""
    metrics = Metrics()
    metrics.expect_providers(SMS, EMAIL)
    metrics.watch_circuits(lambda: dict.fromkeys(SMS + EMAIL, 0))
    metrics.watch_lag(lambda: 0)
    return metrics


def _samples(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    ]


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        have = labels.get(label, "")
        ok = {
            "=": have == value,
            "!=": have != value,
            "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None,
        }[op]
        if not ok:
            return False
    return True


def _alert_selectors() -> list[Any]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [
        pytest.param(name, MATCHER_RE.findall(matchers or ""), id=f"{rule['alert']}: {name}{{{matchers}}}")
        for group in doc["groups"]
        for rule in group["rules"]
        for name, matchers in SELECTOR_RE.findall(rule["expr"])
    ]


@pytest.mark.parametrize(("name", "matchers"), _alert_selectors())
def test_every_series_an_alert_selects_is_exported_at_zero_from_start_up(
    name: str, matchers: list[tuple[str, str, str]]
) -> None:
    # increase() and rate() see nothing of a series' first value: the first dead letter, given-up
    # fallback or forged callback of each kind would be missed if its series began at 1.
    found = [
        (n, labels, v) for n, labels, v in _samples(_started()) if n == name and _matches(labels, matchers)
    ]
    assert found, f"no series of {name} matches {matchers} at start-up"
    assert all(v == 0 for _, _, v in found), found


def test_labelled_counters_start_at_zero_for_every_known_value() -> None:
    samples = {(n, tuple(sorted(labels.items()))): v for n, labels, v in _samples(_started())}
    for decision in DECISIONS:
        assert samples[("notifier_decisions_total", (("decision", decision),))] == 0
    assert {d for d in DECISIONS} == {
        "sent",
        "failed",
        "suppressed_stale",
        "suppressed_opted_out",
        "suppressed_invalid_recipient",
        "suppressed_pilot",
        "scheduled",  # quiet hours, then one of the others at the release
        "suppressed_superseded",
    }
    for provider in SMS + EMAIL:
        for result in ("forged", "bad_reference", "delivered"):
            assert samples[("notifier_callbacks_total", (("provider", provider), ("result", result)))] == 0
    for provider in SMS:
        key = ("notifier_status_reconciliations_total", (("provider", provider), ("result", "gave_up")))
        assert samples[key] == 0
    assert (
        "notifier_status_reconciliations_total",
        (("provider", "sendgrid"), ("result", "gave_up")),
    ) not in samples
    assert samples[("notifier_failovers_total", (("provider", "twilio"), ("to", "next_sms")))] == 0
    assert samples[("notifier_failovers_total", (("provider", "infobip"), ("to", "email")))] == 0
    assert not [k for k in samples if k[0] == "notifier_failovers_total" and ("to", "circuit_open") in k[1]]


def test_circuits_and_lag_are_read_when_scraped() -> None:
    metrics, levels, waiting = Metrics(), {"twilio": 2}, [7]
    metrics.watch_circuits(lambda: dict(levels))
    metrics.watch_lag(lambda: waiting[0])
    get = metrics.registry.get_sample_value
    assert get("notifier_circuit_state", {"provider": "twilio"}) == 2
    assert get("notifier_consumer_lag") == 7
    levels["twilio"], waiting[0] = 1, 0  # the open period ended; the backlog drained
    assert get("notifier_circuit_state", {"provider": "twilio"}) == 1
    assert get("notifier_consumer_lag") == 0


async def test_a_scrape_runs_the_probes_first() -> None:
    metrics, calls = Metrics(), []

    async def probe() -> None:
        calls.append("probe")
        metrics.ready.set(1)

    metrics.on_scrape(probe)
    assert metrics.registry.get_sample_value("notifier_ready") == 0
    text = (await metrics.scrape()).decode()
    assert calls == ["probe"]
    assert "notifier_ready 1.0" in text.splitlines()


def test_process_runtime_and_build_info_are_exported() -> None:
    names = {n for n, _, _ in _samples(Metrics())}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert {"python_gc_collections_total", "process_start_time_seconds"} <= names
    get = Metrics().registry.get_sample_value
    assert get("notifier_build_info", {"version": version()}) == 1
    assert (
        Metrics(build_version="9.9.9").registry.get_sample_value("notifier_build_info", {"version": "9.9.9"})
        == 1
    )


def _largest_finite_bucket(metrics: Metrics, name: str) -> float:
    bounds = [float(labels["le"]) for n, labels, _ in _samples(metrics) if n == f"{name}_bucket"]
    return max(b for b in bounds if not math.isinf(b))


def test_buckets_cover_the_real_ranges() -> None:
    metrics, defaults = Metrics(), SendingSettings.model_fields
    metrics.provider_latency.labels("twilio", "ok")
    # a batch waits for its sends up to the send deadline; one provider call up to its timeout
    assert (
        _largest_finite_bucket(metrics, "notifier_batch_seconds") >= 2 * defaults["send_deadline_s"].default
    )
    timeout = defaults["provider_timeout_s"].default
    assert _largest_finite_bucket(metrics, "notifier_provider_request_seconds") >= 2 * timeout
    assert _largest_finite_bucket(metrics, "notifier_end_to_end_seconds") >= 3600  # behind a backlog: hours
    assert _largest_finite_bucket(metrics, "notifier_batch_records") >= 1000


async def test_promtool_finds_nothing_wrong_with_a_scrape_of_metrics() -> None:
    metrics = _started()

    async def ready() -> dict[str, bool]:
        return {"kafka_assigned": True, "database": True}

    async with TestClient(TestServer(create_app(metrics, ready))) as client:
        reply = await client.get("/metrics")
        assert reply.status == 200
        body = await reply.read()
    checked = check_metrics(body)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
    assert b"notifier_decisions_total" in body


def test_dwell_time_is_labelled_by_listed_places_only_and_each_is_exported_at_zero() -> None:
    metrics = _started()
    metrics.expect_pickup_places(["Kwun Tong", "Sha Tin"])
    dwell = {s[1]["place"]: s[2] for s in _samples(metrics) if s[0] == "notifier_pickup_dwell_seconds_count"}
    assert dwell == {"Kwun Tong": 0.0, "Sha Tin": 0.0, "other": 0.0}
    for place in ("Kwun Tong", "Mong Kok", "旺角", "Tsuen Wan"):
        metrics.observe_dwell(place, 3600.0)
    dwell = {s[1]["place"]: s[2] for s in _samples(metrics) if s[0] == "notifier_pickup_dwell_seconds_count"}
    assert dwell == {"Kwun Tong": 1.0, "Sha Tin": 0.0, "other": 3.0}
