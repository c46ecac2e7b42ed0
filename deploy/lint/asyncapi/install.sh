#!/usr/bin/env bash
# Installs the AsyncAPI parser for `make lint-asyncapi`: Node.js and npm from Debian's packages when
# missing, then `npm ci` of the committed package-lock.json into deploy/lint/asyncapi/node_modules
# (ignored by git). Does nothing when both are there and the lock file has not changed since.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "[asyncapi] missing: node and npm; install them with: sudo apt-get install -y nodejs npm" >&2
    exit 1
  fi
  echo "[asyncapi] installing nodejs and npm from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm ci writes node_modules/.package-lock.json; ours is the stamp of the lock file it installed.
stamp=node_modules/.installed-from
if [ -e "$stamp" ] && cmp -s "$stamp" package-lock.json; then
  exit 0
fi
echo "[asyncapi] npm ci (@asyncapi/parser, from package-lock.json)" >&2
# --ignore-scripts: no dependency needs an install script (one would only send usage analytics).
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
