"""Writes deploy/k8s/prometheusrule.yaml: the Prometheus Operator's PrometheusRule holding the groups
of deploy/prometheus/alerts.yaml, the one rules file (promtool checks and tests it; compose's
Prometheus loads it as is). Run ``make prometheus-rule`` after changing the rules; a unit test fails
while the two differ (tests/unit/test_deploy_artifacts.py).

    python deploy/k8s/prometheusrule.py           # write
    python deploy/k8s/prometheusrule.py --check   # exit 1 if the file is not what it would write
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
OUTPUT = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yaml by deploy/k8s/prometheusrule.py (`make prometheus-rule`):
# do not edit; change the rules file and regenerate (a unit test fails while they differ).
# Needs the monitoring.coreos.com CRDs, and a label your Prometheus's ruleSelector matches (often
# `release: <prometheus release>`: add it in an overlay).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions, descriptions) as literal blocks, like the source."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render(rules_text: str) -> str:
    groups = yaml.safe_load(rules_text)["groups"]
    resource: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "notifier",
            "labels": {
                "app.kubernetes.io/name": "milestone-notifier",
                "app.kubernetes.io/part-of": "milestone-notifier",
            },
        },
        "spec": {"groups": groups},
    }
    body = yaml.dump(resource, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def main(argv: list[str]) -> int:
    wanted = render(RULES.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        if OUTPUT.read_text(encoding="utf-8") != wanted:
            print(f"{OUTPUT.relative_to(ROOT)} differs from {RULES.relative_to(ROOT)}: make prometheus-rule")
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUTPUT.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
