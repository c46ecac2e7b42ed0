"""The deploy artifacts (container, Kubernetes, Grafana, Prometheus) agree with the code they deploy.

Every metric a dashboard or alert queries is one the service exports, with labels it has; every
``NOTIFIER_*`` variable is a real setting; every command is one the CLI accepts; every alert has a
runbook section. These break when the code moves and the artifacts do not.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from service.cli import _parser
from service.domain.errors import ConfigError
from service.metrics import Metrics
from service.settings import SANDBOX_SECRETS, Settings, refuse_sandbox_secrets

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
COMPOSE = DEPLOY / "container" / "compose.yaml"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
CONFIG_ENV = K8S / "config.env"
PROMETHEUS_RULE = K8S / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "notifier-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
DATASOURCE_VARIABLE = "${datasource}"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
RUNBOOK = DEPLOY / "prometheus" / "RUNBOOK.md"
RUNBOOK_LINK = "deploy/prometheus/RUNBOOK.md#"
# runbook_url: the same section on the repository's hosting (README "Alerts and runbook").
RUNBOOK_URL_RE = re.compile(r"https://[^\s#]+/deploy/prometheus/RUNBOOK\.md#([a-z0-9-]+)")

METRIC_RE = re.compile(r"\bnotifier_[a-z0-9_]+\b")
ENV_RE = re.compile(r"\bNOTIFIER_[A-Z0-9_]+\b")
SELECTOR_RE = re.compile(r"\b(notifier_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
# Labels Prometheus adds to every scraped series, and the histogram bucket bound.
TARGET_LABELS = {"namespace", "instance", "job", "pod", "service", "endpoint", "container", "le"}
UNPREFIXED_ENV = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
SEVERITIES = {"critical", "warning", "info"}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # containers must listen beyond loopback


# --- what the service exports -------------------------------------------------------------------


def _exposition() -> dict[str, set[str]]:
    """Sample name -> label names, from ``Metrics().render()`` after touching every label set."""
    metrics = Metrics()
    metrics.watch_circuits(lambda: {"twilio": 0})  # as the composition root does
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*("x" for _ in metric._labelnames))
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


EXPORTED = _exposition()


def test_the_exposition_has_the_usual_suffixes() -> None:
    # Guards the helper itself: counters as _total, histograms as _bucket/_sum/_count.
    assert "notifier_events_total" in EXPORTED
    assert {"notifier_end_to_end_seconds_bucket", "notifier_end_to_end_seconds_count"} <= set(EXPORTED)
    assert EXPORTED["notifier_circuit_state"] == {"provider"}
    assert "le" in EXPORTED["notifier_provider_request_seconds_bucket"]


# --- reading the artifacts ----------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside


def _dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _env_file(path: Path) -> dict[str, str]:
    """kustomize's env-file format: KEY=value a line (the value verbatim), # comments, blank lines."""
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: no '=' in {line!r}"
        assert key == key.strip(), f"{path.name}: spaces around {key!r}"
        assert key not in pairs, f"{path.name}: {key} twice"
        pairs[key] = value
    return pairs


def _generated_config_map() -> dict[str, Any]:
    """The ConfigMap the kustomization's configMapGenerator makes (before its name gets the hash)."""
    (generator,) = _yaml(KUSTOMIZATION)["configMapGenerator"]
    data: dict[str, str] = {}
    for env in generator["envs"]:
        data.update(_env_file(K8S / env))
    labels = generator.get("options", {}).get("labels", {})
    return {"kind": "ConfigMap", "metadata": {"name": generator["name"], "labels": labels}, "data": data}


def _k8s_docs() -> dict[str, dict[str, Any]]:
    """kind -> the manifest (one of each kind here), the generated ConfigMap included."""
    docs: dict[str, dict[str, Any]] = {"ConfigMap": _generated_config_map()}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert doc["kind"] not in docs, f"two {doc['kind']} manifests"
            docs[doc["kind"]] = doc
    return docs


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _all_exprs() -> list[Any]:
    """Every PromQL query, as pytest params named after their panel or alert."""
    queries = [(f"dashboard: {t}", e) for t, e in _dashboard_exprs()]
    queries += [(f"alert: {r['alert']}", r["expr"]) for r in _rules()]
    return [pytest.param(where, expr, id=f"{where} #{i}") for i, (where, expr) in enumerate(queries)]


# --- metrics in PromQL --------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "expr"), _all_exprs())
def test_every_queried_metric_is_exported(where: str, expr: str) -> None:
    unknown = sorted(set(METRIC_RE.findall(expr)) - set(EXPORTED))
    assert not unknown, f"{where} queries {unknown}, not in service/metrics.py's exposition"


@pytest.mark.parametrize(("where", "expr"), _all_exprs())
def test_every_label_in_a_query_exists_on_its_metric(where: str, expr: str) -> None:
    for name, matchers in SELECTOR_RE.findall(expr):
        for label in MATCHER_RE.findall(matchers):
            assert label in EXPORTED.get(name, set()) | TARGET_LABELS, f"{where}: {name} has no {label}"
    names = set(METRIC_RE.findall(expr))
    if not names:
        return  # none of ours (the process and runtime collectors' metrics)
    known = set().union(*(EXPORTED.get(n, set()) for n in names)) | TARGET_LABELS
    for group in GROUPING_RE.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            assert label in known, f"{where}: no metric of {sorted(names)} has the label {label}"


def test_the_dashboard_charts_every_exported_metric() -> None:
    charted = {m for _, e in _dashboard_exprs() for m in METRIC_RE.findall(e)}
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in EXPORTED if METRIC_RE.match(n)}
    uncharted = sorted(f for f in families if not any(c.startswith(f) for c in charted))
    assert not uncharted, f"add a panel to {DASHBOARD.name} for {uncharted}"


def test_metric_names_in_the_docs_exist() -> None:
    for path in (RUNBOOK, K8S / "README.md"):
        unknown = sorted(set(METRIC_RE.findall(path.read_text(encoding="utf-8"))) - set(EXPORTED))
        assert not unknown, f"{path.name} names {unknown}"


# --- the dashboard ------------------------------------------------------------------------------


def _uses_the_datasource_variable(datasource: Any) -> bool:
    return datasource == {"type": "prometheus", "uid": DATASOURCE_VARIABLE}


def test_dashboard_parses_and_every_panel_has_a_title_and_a_query() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    panels = list(_panels(dashboard["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        assert panel.get("title"), f"panel {panel['id']} has no title"
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no target"
        assert _uses_the_datasource_variable(panel.get("datasource")), panel["title"]
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r} has an empty query"
            assert _uses_the_datasource_variable(target.get("datasource")), panel["title"]


def test_dashboard_takes_its_data_source_from_a_variable_not_an_import_input() -> None:
    # File provisioning does not fill `__inputs` (an import form's `${DS_PROMETHEUS}` stays literal):
    # a `datasource` variable of type prometheus starts on the default data source instead.
    dashboard = _dashboard()
    text = DASHBOARD.read_text(encoding="utf-8")
    assert "__inputs" not in dashboard
    assert "DS_PROMETHEUS" not in text
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dashboard["templating"]["list"][0]["name"] == "datasource", "the others' queries use it"
    for variable in variables.values():
        if variable["type"] == "query":
            assert _uses_the_datasource_variable(variable["datasource"]), variable["name"]
    references = set(re.findall(r'"uid": "([^"]*)"', text)) - {dashboard["uid"], "-- Grafana --"}
    assert references == {DATASOURCE_VARIABLE}


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the repository path compose mounts there (relative to the compose file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def test_compose_provisions_grafana_with_the_dashboard_and_prometheus_with_the_rules() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        image, _, tag = services[name]["image"].partition(":")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin the image version ({image})"
        for source in _mounts(services[name]).values():
            assert source.exists(), f"{name} mounts {source}, which does not exist"
    # Grafana: the provider's folder holds the dashboard file; the data source is a Prometheus
    # that compose runs, which the dashboard's variable finds by type.
    grafana = _mounts(services["grafana"])
    providers = _yaml(GRAFANA_PROVISIONING / "dashboards" / "notifier.yaml")["providers"]
    (provider,) = providers
    dashboards = {Path(t).parent.as_posix(): s for t, s in grafana.items() if s.suffix == ".json"}
    assert dashboards == {provider["options"]["path"]: DASHBOARD}
    assert grafana["/etc/grafana/provisioning/dashboards"] == GRAFANA_PROVISIONING / "dashboards"
    assert grafana["/etc/grafana/provisioning/datasources"] == GRAFANA_PROVISIONING / "datasources"
    (datasource,) = _yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"
    # Prometheus: its configuration names the rules file beside it, and scrapes the service's
    # operations port (labelled with a namespace, which the alerts and the dashboard group by).
    prometheus = _mounts(services["prometheus"])
    config_path = "/etc/prometheus/prometheus.yml"
    assert prometheus[config_path] == PROMETHEUS_CONFIG
    config = _yaml(PROMETHEUS_CONFIG)
    assert f"--config.file={config_path}" in services["prometheus"]["command"]
    for rule_file in config["rule_files"]:
        assert prometheus[str(Path(config_path).parent / rule_file)] == ALERTS
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "notifier"]
    (static,) = job["static_configs"]
    env = services["notifier"]["environment"]
    assert static["targets"] == [f"notifier:{env['NOTIFIER_METRICS_PORT']}"]
    assert job["metrics_path"] == "/metrics"
    assert "namespace" in static["labels"]


def test_dashboard_covers_what_sre_asked_for() -> None:
    exprs = " ".join(e for _, e in _dashboard_exprs())
    for needed in (
        'notifier_decisions_total{namespace=~"$namespace",decision="sent"}',  # the SLI
        "histogram_quantile(0.99, sum by (le) (rate(notifier_end_to_end_seconds_bucket",
        'sum by (namespace) (notifier_consumer_lag{namespace=~"$namespace"})',  # the service's own lag
    ):
        assert needed in exprs
    assert "kafka_consumergroup_lag" not in exprs
    circuit = [p for p in _panels(_dashboard()["panels"]) if "notifier_circuit_state" in json.dumps(p)]
    texts = {
        o["text"]
        for p in circuit
        for m in p["fieldConfig"]["defaults"].get("mappings", [])
        for o in m["options"].values()
    }
    assert {"closed", "half-open", "open"} <= texts


# --- alerts and runbook -------------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return anchors


def test_every_alert_is_complete_and_has_a_runbook_section() -> None:
    rules = _rules()
    anchors = _anchors(RUNBOOK.read_text(encoding="utf-8"))
    assert len({r["alert"] for r in rules}) == len(rules), "alert names must be unique"
    for rule in rules:
        name = rule["alert"]
        assert rule.get("expr", "").strip(), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert notes.get("summary"), name
        assert notes.get("description"), name
        assert notes["runbook"].startswith(RUNBOOK_LINK), name
        anchor = notes["runbook"].removeprefix(RUNBOOK_LINK)
        assert anchor in anchors, f"{name}: RUNBOOK.md has no heading for #{anchor}"
        url = RUNBOOK_URL_RE.fullmatch(notes.get("runbook_url", ""))
        assert url, f"{name}: runbook_url must be an absolute https URL of RUNBOOK.md#<section>"
        assert url.group(1) == anchor, name
        if "for" in rule:
            assert re.fullmatch(r"(\d+[smhd])+", rule["for"]), name


def test_every_runbook_url_shares_one_base() -> None:
    # One base, so pointing them at another hosting is one substitution (README).
    bases = {r["annotations"]["runbook_url"].split("#")[0] for r in _rules()}
    assert len(bases) == 1, bases
    assert bases <= set(re.findall(r"https://\S+/RUNBOOK\.md", ALERT_TESTS.read_text(encoding="utf-8")))


def test_every_alert_has_a_promtool_case_where_it_fires_and_one_where_it_stays_quiet() -> None:
    # The cases themselves run in `make lint` (promtool test rules); here: none is left out.
    doc = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    assert doc["rule_files"] == [ALERTS.name]
    checks = [c for test in doc["tests"] for c in test.get("alert_rule_test", [])]
    for name in (r["alert"] for r in _rules()):
        mine = [c for c in checks if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no promtool case where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no promtool case where it stays quiet"
    for check in checks:
        for alert in check.get("exp_alerts") or []:
            assert alert.get("exp_annotations"), f"{check['alertname']}: check the rendered annotations too"


def test_alerts_cover_what_sre_asked_for() -> None:
    exprs = {r["alert"]: r["expr"] for r in _rules()}
    all_open = next(e for e in exprs.values() if 'provider="twilio"' in e and 'provider="infobip"' in e)
    assert "== 2" in all_open
    # Over decisions (one per notification), never over receipts (sent, then delivered: two).
    assert "notifier_notifications_total" not in exprs["NotifierLowSuccessRate"]
    for metric in (
        "notifier_possible_duplicate_sends_total",
        "notifier_dead_letters_total",
        "notifier_ready",
        "notifier_events_total",
        "notifier_callbacks_total",
        "notifier_end_to_end_seconds_bucket",
        "notifier_decisions_total",  # the SLI
        "notifier_consumer_lag",  # the service's own lag, not an exporter's
        "notifier_outbox_oldest_seconds",
    ):
        assert any(metric in e for e in exprs.values()), metric


def test_runbook_links_point_at_its_own_sections() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = _anchors(text)
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, link
    alerts = {r["alert"].lower() for r in _rules()}
    orphans = sorted({a for a in anchors if a.startswith("notifier") and a != "notifier-runbook"} - alerts)
    assert not orphans, f"RUNBOOK.md sections without an alert: {orphans}"


# --- settings named in the deployment -----------------------------------------------------------


def _env_files() -> list[Path]:
    return [DOCKERFILE, COMPOSE, RUNBOOK, *sorted(K8S.glob("*.yaml")), CONFIG_ENV, K8S / "README.md"]


@pytest.mark.parametrize("path", _env_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_notifier_variable_is_a_setting(path: Path) -> None:
    fields = set(Settings.model_fields)
    unknown = sorted(
        name
        for name in set(ENV_RE.findall(path.read_text(encoding="utf-8")))
        if name.removeprefix("NOTIFIER_").lower() not in fields
    )
    assert not unknown, f"{path.name} names settings that do not exist: {unknown}"


def _is_setting(name: str) -> bool:
    return name in UNPREFIXED_ENV or (
        name.startswith("NOTIFIER_") and name.removeprefix("NOTIFIER_").lower() in Settings.model_fields
    )


def test_configmap_secret_and_compose_environments_hold_settings_only() -> None:
    docs = _k8s_docs()
    config, secret = docs["ConfigMap"]["data"], docs["Secret"]["stringData"]
    environments = [config, secret] + [
        s["environment"] for s in _compose()["services"].values() if "notifier" in s.get("image", "")
    ]
    for env in environments:
        assert env, "empty environment"
        bad = sorted(k for k in env if not _is_setting(k))
        assert not bad, f"not settings: {bad}"
    assert not set(config) & set(secret), "a setting both in the ConfigMap and the Secret"


def test_secret_template_holds_placeholders_only() -> None:
    secret = _k8s_docs()["Secret"]["stringData"]
    for key in ("NOTIFIER_PII_KEYS", "NOTIFIER_BLIND_INDEX_KEY", "NOTIFIER_LINK_SIGNING_KEY"):
        assert key in secret
    for key, value in secret.items():
        assert "REPLACE_ME" in value, f"{key} looks like a real value"
    secret_fields = {n for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}
    in_config = {k.removeprefix("NOTIFIER_").lower() for k in _k8s_docs()["ConfigMap"]["data"]}
    assert not secret_fields & in_config, "a secret setting in the ConfigMap"


# --- container and manifests --------------------------------------------------------------------


def _instruction(dockerfile: str, name: str) -> list[str]:
    lines = [line for line in dockerfile.splitlines() if line.startswith(f"{name} ")]
    assert len(lines) == 1, name
    value: list[str] = json.loads(lines[0].removeprefix(f"{name} "))
    return value


def _accepted(argv: list[str]) -> bool:
    try:
        _parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def test_dockerfile_runs_the_notifier_command() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert _instruction(text, "ENTRYPOINT") == ["notifier"]
    assert _accepted(_instruction(text, "CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "notifier" in scripts
    assert re.search(r"^USER (?!root|0\b)", text, re.MULTILINE), "the image must not run as root"
    # The templates are package data in the virtualenv: no copy of them, no path to them.
    assert "/app/templates" not in text
    assert "EXPOSE 8080 8081" in text
    assert "NOTIFIER_HTTP_PORT=8080" in text
    assert "NOTIFIER_METRICS_PORT=8081" in text
    assert f"NOTIFIER_METRICS_HOST={ALL_INTERFACES}" in text
    # The health check asks the operations listener (the public one no longer serves /healthz).
    health = next(line for line in text.splitlines() if "CMD " in line and "urlopen" in line)
    assert "http://127.0.0.1:8081/healthz" in health


def test_every_command_in_compose_and_kubernetes_is_one_the_cli_accepts() -> None:
    commands = [s["command"] for s in _compose()["services"].values() if "notifier" in s.get("image", "")]
    docs = _k8s_docs()
    for kind in ("Deployment", "Job"):
        commands += [c["args"] for c in docs[kind]["spec"]["template"]["spec"]["containers"]]
    assert ["db", "migrate"] in commands
    assert ["run"] in commands
    for argv in commands:
        assert _accepted(argv), argv


def test_compose_wires_the_parts_together() -> None:
    services = _compose()["services"]
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["sandbox"]["command"] == ["sandbox", "--host", ALL_INTERFACES, "--port", "18700"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    notifier = services["notifier"]
    assert notifier["env_file"][0]["path"] == "secrets.env"
    assert notifier["environment"]["NOTIFIER_HTTP_HOST"] == ALL_INTERFACES
    assert notifier["environment"]["NOTIFIER_METRICS_HOST"] == ALL_INTERFACES
    assert set(notifier["depends_on"]) >= {"migrate", "topics"}
    env = notifier["environment"]
    published = {p.rsplit(":", 1)[1] for p in notifier["ports"]}
    assert published == {env["NOTIFIER_HTTP_PORT"], env["NOTIFIER_METRICS_PORT"]}


def _settings_from(env: dict[str, str]) -> Settings:
    fields = {k.removeprefix("NOTIFIER_").lower(): v for k, v in env.items() if k.startswith("NOTIFIER_")}
    return Settings(**fields)


def test_compose_runs_the_sandbox_in_sandbox_mode_and_kubernetes_never_does() -> None:
    # Compose reaches the sandbox by its service name (not loopback) with the public default
    # secrets: it only starts because it says it is a sandbox.
    env = dict(_compose()["services"]["notifier"]["environment"])
    assert env["NOTIFIER_SANDBOX_MODE"] == "true"
    refuse_sandbox_secrets(_settings_from(env))
    with pytest.raises(ConfigError, match="NOTIFIER_TWILIO_AUTH_TOKEN"):
        refuse_sandbox_secrets(_settings_from({**env, "NOTIFIER_SANDBOX_MODE": "false"}))
    docs = _k8s_docs()
    config, secret = docs["ConfigMap"]["data"], docs["Secret"]["stringData"]
    assert "NOTIFIER_SANDBOX_MODE" not in config
    assert "NOTIFIER_SANDBOX_MODE" not in secret
    production = _settings_from({**config, **secret})
    refuse_sandbox_secrets(production)  # every sandbox secret has its own (placeholder) value
    for name in SANDBOX_SECRETS:
        assert f"NOTIFIER_{name.upper()}" in secret, f"the Secret template lacks {name}"


def test_kubernetes_manifests_fit_together() -> None:
    docs = _k8s_docs()
    deployment, service, monitor = docs["Deployment"], docs["Service"], docs["ServiceMonitor"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["spec"]["terminationGracePeriodSeconds"] == 60
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "ops"}, probe
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(docs["ConfigMap"]["data"]["NOTIFIER_HTTP_PORT"]) == 8080
    assert ports["ops"] == int(docs["ConfigMap"]["data"]["NOTIFIER_METRICS_PORT"]) == 8081
    assert docs["ConfigMap"]["data"]["NOTIFIER_METRICS_HOST"] == ALL_INTERFACES
    targets = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert targets == {"http": "http", "ops": "ops"}
    sources = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert sources == {
        "configMapRef": docs["ConfigMap"]["metadata"]["name"],
        "secretRef": docs["Secret"]["metadata"]["name"],
    }
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items(), selector
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "ops"  # the operations listener: the public port has no /metrics
    for doc in docs.values():
        assert "namespace" not in doc.get("metadata", {}), f"{doc['kind']} names a namespace"


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    # The Job too, so that an overlay's `images:` and the generated ConfigMap's name reach it.
    kustomization = _yaml(KUSTOMIZATION)
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    manifests = {p.name for p in K8S.glob("*.yaml")} - {KUSTOMIZATION.name, "secret.example.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert "job-migrate.yaml" in kustomization["resources"]
    (image,) = kustomization["images"]
    containers = [c for kind in ("Deployment", "Job") for c in _pod_spec(kind)["containers"]]
    assert all(c["image"].split(":")[0] == image["name"] for c in containers)


def test_the_configmap_is_generated_so_that_a_change_rolls_the_pods() -> None:
    kustomization = _yaml(KUSTOMIZATION)
    assert not any(
        d["kind"] == "ConfigMap" for p in K8S.glob("*.yaml") for d in yaml.safe_load_all(p.read_text())
    )
    (generator,) = kustomization["configMapGenerator"]
    assert generator["envs"] == [CONFIG_ENV.name]
    assert not generator.get("options", {}).get("disableNameSuffixHash"), "the hash is what rolls the pods"
    for kind in ("Deployment", "Job"):
        (container,) = _pod_spec(kind)["containers"]
        refs = [r["configMapRef"]["name"] for r in container["envFrom"] if "configMapRef" in r]
        assert refs == [generator["name"]], kind
    # kustomize takes a value verbatim: quotes would become part of it.
    for key, value in _env_file(CONFIG_ENV).items():
        assert not value.startswith(('"', "'")), key


def test_no_deploy_artefact_points_at_the_templates() -> None:
    # Templates are package data (importlib.resources): the setting's default finds them anywhere.
    assert Settings.model_fields["templates_dir"].default_factory is not None
    assert "NOTIFIER_TEMPLATES_DIR=" not in DOCKERFILE.read_text(encoding="utf-8")
    environments = [_env_file(CONFIG_ENV)] + [
        s.get("environment", {}) for s in _compose()["services"].values()
    ]
    for env in environments:
        assert "NOTIFIER_TEMPLATES_DIR" not in env


def _pod_spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = _k8s_docs()[kind]["spec"]["template"]["spec"]
    return spec


def test_every_container_requests_and_limits_ephemeral_storage() -> None:
    for kind in ("Deployment", "Job"):
        spec = _pod_spec(kind)
        for container in spec.get("initContainers", []) + spec["containers"]:
            resources = container["resources"]
            for part in ("requests", "limits"):
                assert "ephemeral-storage" in resources[part], f"{kind}/{container['name']} {part}"
            assert _quantity(resources["requests"]["ephemeral-storage"]) <= _quantity(
                resources["limits"]["ephemeral-storage"]
            )
            # The emptyDir on /tmp counts towards the limit: it must fit.
            tmp = sum(
                _quantity(v["emptyDir"]["sizeLimit"]) for v in spec.get("volumes", []) if "emptyDir" in v
            )
            assert tmp < _quantity(resources["limits"]["ephemeral-storage"]), kind


def _quantity(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", value).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def _peers(rule: dict[str, Any]) -> list[str]:
    return [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule.get("from", [])
    ]


def test_the_network_policy_admits_public_paths_via_the_ingress_and_metrics_via_monitoring() -> None:
    docs = _k8s_docs()
    policy = docs["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    selector = policy["podSelector"]["matchLabels"].items()
    for kind in ("Deployment", "Job"):
        assert selector <= docs[kind]["spec"]["template"]["metadata"]["labels"].items(), kind
    by_port = {port["port"]: _peers(rule) for rule in policy["ingress"] for port in rule["ports"]}
    assert by_port == {"http": ["ingress-nginx"], "ops": ["monitoring"]}
    (container,) = _pod_spec("Deployment")["containers"]
    assert {p["name"] for p in container["ports"]} == set(by_port), "a port the policy does not name"
    assert all(rule.get("from") for rule in policy["ingress"]), "an ingress rule open to every source"
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (5432, "TCP"), (443, "TCP")} <= egress
    assert all(rule.get("ports") for rule in policy["egress"]), "an egress rule open on every port"
    kafka = docs["ConfigMap"]["data"]["NOTIFIER_KAFKA_BOOTSTRAP_SERVERS"]
    assert int(kafka.rsplit(":", 1)[1]) in {port for port, _ in egress}


def _rule_generator() -> Any:
    spec = importlib.util.spec_from_file_location("prometheusrule", K8S / "prometheusrule.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prometheus_rule_is_generated_from_the_rules_file() -> None:
    generator = _rule_generator()
    assert PROMETHEUS_RULE.read_text(encoding="utf-8") == generator.render(
        ALERTS.read_text(encoding="utf-8")
    ), "deploy/k8s/prometheusrule.yaml is stale: run `make prometheus-rule`"
    rule = _k8s_docs()["PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    assert rule["metadata"]["labels"].items() <= _k8s_docs()["ServiceMonitor"]["metadata"]["labels"].items()


def test_the_rule_generator_notices_a_changed_rules_file() -> None:
    generator = _rule_generator()
    changed = ALERTS.read_text(encoding="utf-8").replace("severity: critical", "severity: info", 1)
    assert generator.render(changed) != PROMETHEUS_RULE.read_text(encoding="utf-8")


def test_only_the_migration_gets_the_owner_roles_url() -> None:
    # The replicas run as the service's role; the owner's URL (which could alter the audit log)
    # reaches only `db migrate`: the k8s Job from its own Secret, the compose migrate job.
    docs = _k8s_docs()
    owner = "NOTIFIER_MIGRATION_DATABASE_URL"
    (job,) = docs["Job"]["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in job.get("env", [])}
    assert refs.get(owner) not in {None, docs["Secret"]["metadata"]["name"]}
    (service,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert owner not in yaml.safe_dump(service)
    assert owner not in docs["Secret"]["stringData"]
    assert owner not in docs["ConfigMap"]["data"]
    services = _compose()["services"]
    assert owner in services["migrate"]["environment"]
    assert owner not in services["notifier"]["environment"]
    service_url = services["notifier"]["environment"]["NOTIFIER_DATABASE_URL"]
    assert (
        service_url.split("//")[1].split(":")[0]
        != services["migrate"]["environment"][owner].split("//")[1].split(":")[0]
    )
