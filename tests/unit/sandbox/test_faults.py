"""Fault injection: validation, the latency distribution, outages, undelivered shares, all with seeded dice."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from service.sandbox import infobip, sendgrid, twilio
from service.sandbox.core import SandboxState
from service.sandbox.faults import LATENCY_CAP, Fault


def parse(data: Any, *, now: float = 100.0, valid: Any = twilio.valid_error_code) -> Fault:
    return Fault.from_json(data, now=now, valid_code=valid)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, Fault()),
        ({"error_code": 503}, Fault(error_rate=1.0, error_code=503)),
        ({"error_code": 503, "error_rate": 0.25}, Fault(error_rate=0.25, error_code=503)),
        ({"latency_ms": 120}, Fault(latency_ms=120.0)),
        ({"latency_ms": 12.5}, Fault(latency_ms=12.5)),
        ({"latency_ms": {"p50": 80, "p99": 400}}, Fault(latency_ms=80.0, latency_p99_ms=400.0)),
        ({"outage_s": 30}, Fault(outage_until=130.0)),
        (
            {"undelivered_rate": 0.1, "callback_delay_ms": 250},
            Fault(undelivered_rate=0.1, callback_delay_ms=250.0),
        ),
        ({"error_code": 429, "retry_after": 3}, Fault(error_rate=1.0, error_code=429, retry_after=3)),
    ],
)
def test_from_json(data: dict[str, Any], expected: Fault) -> None:
    fault = parse(data)
    assert fault == expected
    again = fault.to_json(100.0)
    assert again["outage_s"] == data.get("outage_s", 0.0)
    assert parse({k: v for k, v in again.items() if v is not None}) == fault  # to_json round-trips


@pytest.mark.parametrize(
    "data",
    [
        {"error_rate": 1.5},
        {"error_rate": float("nan")},
        {"undelivered_rate": -0.1},
        {"latency_ms": -1},
        {"latency_ms": "slow"},
        {"latency_ms": {"p50": 0, "p99": 10}},
        {"latency_ms": {"p50": 50, "p99": 10}},
        {"latency_ms": {"p50": 50}},
        {"latency_ms": {"p50": 50, "p99": 90, "p999": 200}},
        {"outage_s": -5},
        {"outage_s": True},
        {"callback_delay_ms": "soon"},
        {"retry_after": -1},
        {"retry_after": 1.5},
        {"error_code": 99},
        {"surprise": 1},
        "503",
    ],
)
def test_from_json_rejects(data: Any) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse(data)


def test_codes_are_the_providers_own() -> None:
    assert (
        parse({"error_code": "REJECTED_SENDER"}, valid=infobip.valid_error_code).error_code
        == "REJECTED_SENDER"
    )
    assert parse({"error_code": 503}, valid=infobip.valid_error_code).error_code == 503
    assert parse({"error_code": 30008}).error_code == 30008
    for code, valid in [
        (30008, infobip.valid_error_code),
        (30008, sendgrid.valid_error_code),
        ("x", twilio.valid_error_code),
    ]:
        with pytest.raises(ValueError, match="error_code"):
            parse({"error_code": code}, valid=valid)


def test_latency_is_fixed_without_a_p99() -> None:
    rng = random.Random(1)
    assert {Fault(latency_ms=40).latency_s(rng) for _ in range(10)} == {0.04}
    assert Fault().latency_s(rng) == 0.0


def test_latency_distribution_fits_p50_and_p99() -> None:
    fault = Fault(latency_ms=80, latency_p99_ms=400)
    rng = random.Random(2024)
    samples = sorted(fault.latency_s(rng) * 1000 for _ in range(20_000))
    p50, p99 = statistics.median(samples), samples[int(0.99 * len(samples))]
    assert 76 <= p50 <= 84
    assert 370 <= p99 <= 430
    assert max(samples) <= 400 * LATENCY_CAP
    assert min(samples) > 0


def test_outage_runs_on_the_monotonic_clock() -> None:
    fault = parse({"outage_s": 10}, now=50.0)
    assert fault.in_outage(50.0)
    assert fault.in_outage(59.9)
    assert not fault.in_outage(60.0)
    assert not Fault().in_outage(0.0)


async def test_admit_answers_503_during_an_outage_then_recovers() -> None:
    clock = [0.0]
    state = SandboxState("AC" + "0" * 32, "t", monotonic=lambda: clock[0], rng=random.Random(0))
    state.set_fault("infobip", parse({"outage_s": 5}, now=0.0, valid=infobip.valid_error_code))
    failing = await state.admit("infobip")
    assert failing is not None
    assert failing.error_code == 503
    clock[0] = 5.0
    assert await state.admit("infobip") is None
    assert await state.admit("twilio") is None


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 1.0])
def test_rates_are_honoured_with_seeded_dice(rate: float) -> None:
    state = SandboxState("AC" + "0" * 32, "t", rng=random.Random(11))
    state.set_fault("twilio", Fault(error_rate=rate, undelivered_rate=rate))
    fault = state.faults["twilio"]
    failed = sum(fault.fails(state.rng) for _ in range(4000)) / 4000
    undelivered = sum(state.undelivered("twilio") for _ in range(4000)) / 4000
    assert failed == pytest.approx(rate, abs=0.03)
    assert undelivered == pytest.approx(rate, abs=0.03)
    assert not state.undelivered("sendgrid")
