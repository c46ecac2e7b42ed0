#!/usr/bin/env bash
# Restore a backup made by backup.sh into an EMPTY database (it refuses a database that already
# has the notifier's tables, so it cannot overwrite live data by mistake).
#
#   deploy/backup/restore.sh FILE TARGET_DATABASE_URL
set -euo pipefail
file=${1:?usage: restore.sh FILE TARGET_DATABASE_URL}
target=${2:?usage: restore.sh FILE TARGET_DATABASE_URL}
if [ "$(psql "$target" -tAc "select to_regclass('public.notifications') is not null")" = "t" ]; then
  echo "refusing: the target database already has a notifications table" >&2
  exit 1
fi
pg_restore --no-owner --no-privileges --exit-on-error --dbname="$target" "$file"
echo "restored $file: $(psql "$target" -tAc 'select count(*) from notifications') notification(s)"
