# The one entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

# The local stack (deploy/local/*.sh); tests and the service read these.
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(or $(NOTIFIER_KAFKA_PORT),19092)
export DATABASE_URL ?= postgresql://notifier@127.0.0.1:$(or $(NOTIFIER_PG_PORT),15432)/notifier

.PHONY: help install stack-up stack-down stack-status test chaos bench test-unit mutation lint format demo run sandbox schemas clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed  ## create .venv and install the service with its dev tools

stack-up:  ## install (if missing) and start Kafka and PostgreSQL on 127.0.0.1
	deploy/local/prereqs.sh
	deploy/local/kafka.sh start
	deploy/local/postgres.sh start

stack-down:  ## stop Kafka and PostgreSQL
	-deploy/local/kafka.sh stop
	-deploy/local/postgres.sh stop

stack-status:  ## is the local stack up?
	-deploy/local/kafka.sh status
	-deploy/local/postgres.sh status

test: install stack-up  ## run every test (unit + integration on the real local stack)
	$(BIN)/pytest

chaos: install stack-up  ## only the chaos scenarios (kill -9, SIGTERM, broker restart, PostgreSQL stop, provider storm, all down); CHAOS_ORDERS=1500 for the big workload
	$(BIN)/pytest -m chaos -s

bench: install  ## benchmark the service end to end on the local stack (after `make stack-up`; ~5 min): table + JSON; BENCH_ORDERS=2000 sizes it
	$(BIN)/python -m tests.bench.bench_end_to_end

test-unit: install  ## unit tests only: no Kafka or PostgreSQL needed
	$(BIN)/pytest tests/unit

# Not part of `make test`: it runs the unit tests that reach each mutant, once per mutant (about
# 9 minutes on 2 shared cores). What it mutates is `only_mutate` in pyproject.toml (a list of
# globs: add a part there). MUTANTS narrows a run, e.g. MUTANTS='service.domain.ratelimit*';
# `.venv/bin/mutmut show NAME` shows one survivor; tests/MUTATION.md lists those judged equivalent.
MUTANTS ?=
mutation: install  ## mutation testing (mutmut) of the domain, the consume loop, the webhook parsers and the pipeline stages: the survivors, then the score per module and part
	$(BIN)/mutmut run $(MUTANTS)
	$(BIN)/mutmut results
	$(BIN)/mutmut results --all true | $(BIN)/python -m tests.mutation_score

lint: install lint-settings lint-alerts  ## ruff lint + format check, mypy strict, schema drift, template budgets, alert rules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/notifier schemas check
	$(BIN)/notifier templates check

# AsyncAPI: schemas/asyncapi.yaml parsed by the official parser (@asyncapi/parser, its $refs to the
# JSON Schemas resolved), which must also refuse broken variants of it (--self-test).
# deploy/lint/asyncapi/install.sh installs Node.js (Debian) if missing and `npm ci`s the lock file.
ASYNCAPI_LINT := deploy/lint/asyncapi
lint: lint-asyncapi
lint-asyncapi:  ## validate schemas/asyncapi.yaml with the AsyncAPI parser (and that it refuses broken ones)
	$(ASYNCAPI_LINT)/install.sh
	node $(ASYNCAPI_LINT)/validate.mjs schemas/asyncapi.yaml
	node $(ASYNCAPI_LINT)/validate.mjs --self-test schemas/asyncapi.yaml
.PHONY: lint-asyncapi
.PHONY: lint-settings
lint-settings: install  ## the README's settings reference is the one generated from the settings model
	$(BIN)/notifier settings check --file README.md

# The deploy artefacts, each checked by its ecosystem's own tool (issue 14). deploy/lint/tools.sh
# installs what is not a PyPI dev extra (promtool, kustomize, kubeconform, the schemas) into
# .local/tools (ignored) and is quick once they are there.
TOOLS := .local/tools
KUBECONFORM := $(TOOLS)/bin/kubeconform -strict -summary \
	-schema-location '$(TOOLS)/schemas/kubernetes/current/{{.ResourceKind}}{{.KindSuffix}}.json' \
	-schema-location '$(TOOLS)/schemas/crds/current/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'
.PHONY: lint-deploy prometheus-rule
lint: lint-deploy
lint-deploy: install  ## hadolint, compose-spec schema, promtool check config, kustomize build | kubeconform (CRDs too), PrometheusRule drift
	deploy/lint/tools.sh
	$(BIN)/hadolint deploy/container/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/container/compose.yaml
	promtool check config deploy/prometheus/prometheus.yml
	set -o pipefail; $(TOOLS)/bin/kustomize build deploy/k8s | $(KUBECONFORM) -
	$(KUBECONFORM) deploy/k8s/secret.example.yaml
	$(BIN)/python deploy/k8s/prometheusrule.py --check

prometheus-rule: install  ## regenerate deploy/k8s/prometheusrule.yaml from deploy/prometheus/alerts.yaml
	$(BIN)/python deploy/k8s/prometheusrule.py

# promtool (from Debian's prometheus package, installed by deploy/lint/promtool.sh if missing):
# the rules file is valid and every alert's unit tests pass (fires / stays quiet); a real scrape
# of /metrics passes `promtool check metrics` (tests/unit/test_metrics.py, here and in `make test`).
.PHONY: lint-alerts
lint-alerts: install  ## promtool: check rules, test rules (every alert), check metrics on a scrape
	@PROMTOOL=$$(deploy/lint/promtool.sh) && set -x && \
		$$PROMTOOL check rules deploy/prometheus/alerts.yaml && \
		$$PROMTOOL test rules deploy/prometheus/alerts.test.yaml
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_metrics.py -k promtool

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Local keys (personal data at rest, blind indexes), made once and never committed (.local is ignored).
.local/secrets.env: | $(BIN)/.installed
	mkdir -p .local && umask 077 && $(BIN)/notifier keys generate --kind env --id local1 > $@
WITH_SECRETS := set -a && . ./.local/secrets.env && set +a &&
# The running sandbox's SendGrid event-signing key, so that `make run` accepts its events.
export SANDBOX_KEY := import json,urllib.request as u; print(json.load(u.urlopen("http://127.0.0.1:18700/sandbox/sendgrid/public-key"))["public_key"])

demo: install stack-up .local/secrets.env  ## run the whole thing locally with the sample feed and show what happened
	$(WITH_SECRETS) NOTIFIER_LOG_FORMAT=console NOTIFIER_LOG_LEVEL=WARNING $(BIN)/notifier demo

run: install stack-up .local/secrets.env  ## run the service against the local stack (start `make sandbox` in another shell)
	$(BIN)/notifier db migrate
	$(BIN)/notifier topics
	$(WITH_SECRETS) NOTIFIER_CALLBACK_BASE_URL=http://127.0.0.1:8080 NOTIFIER_PUBLIC_BASE_URL=http://127.0.0.1:8080 \
		NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY=$$($(BIN)/python -c "$$SANDBOX_KEY" 2>/dev/null) \
		NOTIFIER_LOG_FORMAT=console $(BIN)/notifier run

sandbox: install  ## run the sandbox providers (Twilio, Infobip, SendGrid) on 127.0.0.1:18700
	$(BIN)/notifier sandbox

schemas: install  ## regenerate schemas/ from the pydantic models
	$(BIN)/notifier schemas export

clean: stack-down  ## stop the stack and remove its data (keeps the Kafka jar cache)
	rm -rf .local
