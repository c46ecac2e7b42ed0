"""Pure helpers of the benchmark: percentiles, rates, 1-second windows, the table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) by linear interpolation between the closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(times: Sequence[float]) -> float | None:
    """Items per second between the first and the last time (the first item opens the window)."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None


def last_change(samples: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The first (time, value) sample holding the final value of a counter."""
    final = samples[-1][1]
    return next(s for s in samples if s[1] == final)


def counter_rate(samples: Sequence[tuple[float, float]]) -> float | None:
    """Per second, from (time, counter) samples: from the first sample to the one that reached the final
    value (what the counter held at the first sample took an unknown time, so it is left out)."""
    if len(samples) < 2:
        return None
    (t0, v0), (t1, v1) = samples[0], last_change(samples)
    return (v1 - v0) / (t1 - t0) if t1 > t0 else None


def busiest_window(times: Sequence[float], weights: Sequence[float], window_s: float = 1.0) -> float:
    """The largest sum of ``weights`` in any window of ``window_s`` seconds (closed at its start, open
    at its end), over windows starting at each item: what a provider counting per second sees at worst."""
    items = sorted(zip(times, weights, strict=True))
    best = total = 0.0
    end = 0
    for start, (t, _) in enumerate(items):
        while end < len(items) and items[end][0] < t + window_s:
            total += items[end][1]
            end += 1
        best = max(best, total)
        total -= items[start][1]
    return best


def windows_over(
    times: Sequence[float], weights: Sequence[float], limit: float, window_s: float = 1.0
) -> int:
    """How many windows of ``window_s`` starting at an item hold more than ``limit`` (in weights)."""
    items = sorted(zip(times, weights, strict=True))
    over = 0
    total = 0.0
    end = 0
    for start, (t, _) in enumerate(items):
        while end < len(items) and items[end][0] < t + window_s:
            total += items[end][1]
            end += 1
        over += total > limit + 1e-9
        total -= items[start][1]
    return over


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def table(rows: Sequence[tuple[str, Any, str]]) -> str:
    """(measure, value, note) rows as an aligned plain-text table."""
    cells = [(name, _cell(value), note) for name, value, note in rows]
    w0 = max(len("measure"), *(len(c[0]) for c in cells))
    w1 = max(len("value"), *(len(c[1]) for c in cells))
    lines = [f"{'measure':<{w0}}  {'value':>{w1}}  note", f"{'-' * w0}  {'-' * w1}  ----"]
    lines += [f"{name:<{w0}}  {value:>{w1}}  {note}".rstrip() for name, value, note in cells]
    return "\n".join(lines)


def _where(frame: str) -> tuple[str, str]:
    """(function, package) of a py-spy frame ``name (path/to/file.py:line)``."""
    name, _, rest = frame.partition(" (")
    path = rest.rsplit(":", 1)[0]
    parts = path.split("/")
    if "site-packages" in parts:
        package = parts[parts.index("site-packages") + 1]
    elif "service" in parts:
        package = "/".join(parts[parts.index("service") : parts.index("service") + 2]).removesuffix(".py")
    elif stdlib := [i for i, part in enumerate(parts[:-1]) if part.startswith("python3")]:
        package = "stdlib " + parts[stdlib[-1] + 1].removesuffix(".py")
    else:
        package = parts[-1] or "?"
    file = parts[-1].removesuffix(".py")
    return f"{file}.{name}", package


def profile_top(folded: str, n: int = 12) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's collapsed stacks (``frame;frame;leaf count`` lines): the share of samples spent in
    each leaf function (self time) and in each package (self time, by the leaf's package), largest first."""
    by_leaf: dict[str, int] = {}
    by_package: dict[str, int] = {}
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf, package = _where(stack.rsplit(";", 1)[-1])
        by_leaf[leaf] = by_leaf.get(leaf, 0) + int(count)
        by_package[package] = by_package.get(package, 0) + int(count)
        total += int(count)

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
        return [(name, round(100 * c / total, 1)) for name, c in ranked]

    return {"self_by_function_pct": top(by_leaf), "self_by_package_pct": top(by_package)} if total else {}
