"""Misbehaviour injected into one sandbox provider at runtime (``PUT /sandbox/faults/{provider}``).

A fault applies to that provider's sends only:

=================  ==================================================================
field              meaning
=================  ==================================================================
error_rate         share of sends answered with ``error_code`` (default 1 when a code is given)
error_code         an HTTP status, or the provider's own code (Twilio 21211, Infobip
                   ``REJECTED_SENDER``), answered in that provider's error format
retry_after        seconds, sent with a 429
latency_ms         a fixed delay, or ``{"p50": ms, "p99": ms}``: a lognormal fitted to both
outage_s           every send fails with 503 for the next N seconds from now
undelivered_rate   share of accepted messages later reported undelivered (email: bounced)
callback_delay_ms  wait before each delivery callback
=================  ==================================================================
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

#: The standard normal distribution's 99th percentile: p99 = p50 * exp(Z99 * sigma).
Z99: Final = 2.3263478740408408
#: Samples beyond this multiple of p99 are clipped, so one test cannot wait for ever.
LATENCY_CAP: Final = 4.0
FIELDS: Final = frozenset(
    {
        "error_rate",
        "error_code",
        "retry_after",
        "latency_ms",
        "outage_s",
        "undelivered_rate",
        "callback_delay_ms",
    }
)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _rate(data: dict[str, Any], name: str, default: float) -> float:
    value = data.get(name, default)
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number from 0 to 1")
    return float(value)


def _non_negative(data: dict[str, Any], name: str) -> float:
    value = data.get(name, 0)
    if not is_number(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _latency(value: Any) -> tuple[float, float | None]:
    """(p50 ms, p99 ms or None) from ``latency_ms``: a number or ``{"p50": ms, "p99": ms}``."""
    if is_number(value) and value >= 0:
        return float(value), None
    if isinstance(value, dict) and set(value) == {"p50", "p99"}:
        p50, p99 = value["p50"], value["p99"]
        if is_number(p50) and is_number(p99) and 0 < p50 <= p99:
            return float(p50), float(p99)
    raise ValueError('latency_ms must be a non-negative number or {"p50": ms, "p99": ms} with 0 < p50 <= p99')


@dataclass(frozen=True, slots=True)
class Fault:
    """One provider's injected misbehaviour; ``outage_until`` is on the sandbox's monotonic clock."""

    error_rate: float = 0.0
    error_code: int | str = 500
    latency_ms: float = 0.0
    retry_after: int | None = None
    latency_p99_ms: float | None = None
    outage_until: float | None = None
    undelivered_rate: float = 0.0
    callback_delay_ms: float = 0.0

    @classmethod
    def from_json(cls, data: Any, *, now: float, valid_code: Callable[[Any], bool]) -> Fault:
        """Validate a control request; raises ``ValueError`` saying what is wrong."""
        if not isinstance(data, dict) or not set(data) <= FIELDS:
            raise ValueError(f"expected an object with some of {sorted(FIELDS)}")
        code = data.get("error_code", 500)
        if not valid_code(code):
            raise ValueError("error_code must be an HTTP status or one of this provider's error codes")
        retry = data.get("retry_after")
        if retry is not None and (not is_int(retry) or retry < 0):
            raise ValueError("retry_after must be a non-negative integer")
        p50, p99 = _latency(data.get("latency_ms", 0))
        outage_s = _non_negative(data, "outage_s")
        return cls(
            error_rate=_rate(data, "error_rate", 1.0 if "error_code" in data else 0.0),
            error_code=code,
            latency_ms=p50,
            retry_after=retry,
            latency_p99_ms=p99,
            outage_until=now + outage_s if outage_s else None,
            undelivered_rate=_rate(data, "undelivered_rate", 0.0),
            callback_delay_ms=_non_negative(data, "callback_delay_ms"),
        )

    def to_json(self, now: float) -> dict[str, Any]:
        latency: Any = self.latency_ms
        if self.latency_p99_ms is not None:
            latency = {"p50": self.latency_ms, "p99": self.latency_p99_ms}
        return {
            "error_rate": self.error_rate,
            "error_code": self.error_code,
            "retry_after": self.retry_after,
            "latency_ms": latency,
            "outage_s": max(0.0, self.outage_until - now) if self.outage_until is not None else 0.0,
            "undelivered_rate": self.undelivered_rate,
            "callback_delay_ms": self.callback_delay_ms,
        }

    def latency_s(self, rng: random.Random) -> float:
        """One send's delay: fixed, or drawn from the lognormal with this p50 and p99."""
        p50, p99 = self.latency_ms, self.latency_p99_ms
        if p99 is None or p99 <= p50:
            return p50 / 1000
        sigma = math.log(p99 / p50) / Z99
        return min(rng.lognormvariate(math.log(p50), sigma), p99 * LATENCY_CAP) / 1000

    def in_outage(self, now: float) -> bool:
        return self.outage_until is not None and now < self.outage_until

    def fails(self, rng: random.Random) -> bool:
        return self.error_rate > 0 and rng.random() < self.error_rate

    def undelivered(self, rng: random.Random) -> bool:
        return self.undelivered_rate > 0 and rng.random() < self.undelivered_rate
