#!/usr/bin/env bash
# Restore a backup made by backup.sh into an EMPTY database (it refuses a database that already
# has the notifier's tables, so it cannot overwrite live data by mistake).
#
#   deploy/backup/restore.sh FILE TARGET_DATABASE_URL
#   TARGET_DATABASE_URL=... deploy/backup/restore.sh FILE
#
# The password of TARGET (if it has one) goes to psql and pg_restore through a private PGPASSFILE,
# never their argv. Pass the URL in the environment (TARGET_DATABASE_URL) to keep it off this
# script's own command line too.
set -euo pipefail
. "$(dirname "$0")/pgpass.sh"
file=${1:?usage: restore.sh FILE [TARGET_DATABASE_URL]}
pgpass_url "${2:-${TARGET_DATABASE_URL:?usage: restore.sh FILE TARGET_DATABASE_URL}}"
target=$pg_url
if [ "$(psql "$target" -tAc "select to_regclass('public.notifications') is not null")" = "t" ]; then
  echo "refusing: the target database already has a notifications table" >&2
  exit 1
fi
pg_restore --no-owner --no-privileges --exit-on-error --dbname="$target" "$file"
echo "restored $file: $(psql "$target" -tAc 'select count(*) from notifications') notification(s)"
