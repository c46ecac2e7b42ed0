#!/usr/bin/env bash
# Back up the notifier's PostgreSQL database to one file (pg_dump custom format, compressed).
#
#   deploy/backup/backup.sh [FILE]        FILE defaults to notifier-YYYYmmddTHHMMSSZ.dump
#
# Reads DATABASE_URL (or NOTIFIER_DATABASE_URL). The dump holds sealed (encrypted) events and
# blind indexes, never plaintext personal data; it is useless without the keys, which are not in
# it: keep the keys' backup separate. Restore with deploy/backup/restore.sh.
# The password (if the URL has one) goes to pg_dump through a private PGPASSFILE, never its argv.
set -euo pipefail
. "$(dirname "$0")/pgpass.sh"
pgpass_url "${NOTIFIER_DATABASE_URL:-${DATABASE_URL:?set DATABASE_URL to the database to back up}}"
url=$pg_url
file=${1:-notifier-$(date -u +%Y%m%dT%H%M%SZ).dump}
pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$file" "$url"
pg_restore --list "$file" >/dev/null  # the file is readable and complete
echo "backup written: $file ($(du -h "$file" | cut -f1))"
