#!/usr/bin/env bash
# Prints the path of a promtool to use, installing it first when there is none: the one on PATH if
# any, else .local/tools/promtool, taken out of Debian's `prometheus` package (`apt-get download`
# and `dpkg-deb`: only the promtool binary, so no Prometheus server is installed or started).
# Idempotent: does nothing when a promtool is there. `make lint-alerts` calls it.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=.local/tools

if command -v promtool >/dev/null; then command -v promtool; exit 0; fi
if [ -x "$tools/promtool" ]; then echo "$PWD/$tools/promtool"; exit 0; fi

export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[promtool] taking promtool out of Debian's prometheus package" >&2
if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
  apt-get update -qq >&2  # no package lists yet (a fresh machine)
  (cd "$work" && apt-get download -qq prometheus >/dev/null)
fi
dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
mkdir -p "$tools"
install -m 0755 "$work/usr/bin/promtool" "$tools/promtool"
"$tools/promtool" --version >&2
echo "$PWD/$tools/promtool"
