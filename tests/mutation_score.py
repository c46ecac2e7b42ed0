"""The score of `make mutation`, per module and per part: reads `mutmut results --all true` on stdin.

A mutant counts as killed when the tests failed or timed out on it; as surviving when they passed
(survived, suspicious) or when no test ran it (no tests). Skipped and unchecked mutants are not
counted. The survivors judged equivalent are listed in tests/MUTATION.md.

    .venv/bin/mutmut results --all true | .venv/bin/python -m tests.mutation_score
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable

#: ``    service.domain.breaker.xǁBreakerǁrecord__mutmut_3: killed`` -> module, status.
LINE = re.compile(r"\s*(?P<module>[\w.]+?)\.x[_ǁ]\S*__mutmut_\d+: (?P<status>.+)")
KILLED = frozenset({"killed", "timeout"})
SURVIVING = frozenset({"survived", "suspicious", "no tests"})


def tally(lines: Iterable[str]) -> dict[str, Counter[str]]:
    """Per module, how many mutants were killed and how many survive."""
    counts: dict[str, Counter[str]] = {}
    for line in lines:
        if (match := LINE.fullmatch(line.rstrip("\n"))) is None:
            continue
        status = match["status"]
        verdict = "killed" if status in KILLED else "surviving" if status in SURVIVING else None
        if verdict is not None:
            counts.setdefault(match["module"], Counter())[verdict] += 1
    return counts


def row(name: str, count: Counter[str]) -> str:
    total = count["killed"] + count["surviving"]
    killed = 100 * count["killed"] / max(total, 1)
    return f"{name:<46} {count['killed']:>5}/{total:<5} killed ({killed:5.1f} %), {count['surviving']:>3} surviving"


def main() -> None:
    counts = tally(sys.stdin)
    parts: dict[str, Counter[str]] = {}
    for module in sorted(counts):
        print(row(module, counts[module]))
        parts.setdefault(module.rsplit(".", 1)[0], Counter()).update(counts[module])
    print()
    for part in sorted(parts):
        print(row(part, parts[part]))
    print(row("mutation score", sum(counts.values(), Counter())))


if __name__ == "__main__":
    main()
