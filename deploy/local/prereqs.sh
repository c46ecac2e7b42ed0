#!/usr/bin/env bash
# Installs what the local stack and the tests need when it is missing: a JDK 17 and Maven (for
# Kafka), PostgreSQL, and Chromium with a CJK font (the browser test of the support page, whose
# Chinese would otherwise render as empty boxes), all from Debian's packages. Does nothing when
# they are present.
set -euo pipefail

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
# A font with Traditional Chinese glyphs (fc-list comes with chromium's fontconfig).
{ command -v fc-list >/dev/null && [ -n "$(fc-list :lang=zh-hk family)" ]; } || need+=(fonts-noto-cjk)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "[prereqs] missing: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "[prereqs] installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a system cluster on 5432 after installing PostgreSQL; the project runs its own.
if [[ " ${need[*]} " == *" postgresql "* ]]; then service postgresql stop >/dev/null 2>&1 || true; fi
