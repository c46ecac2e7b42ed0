#!/usr/bin/env bash
# A project-owned PostgreSQL cluster for local development and CI (Debian's packages, no Docker).
#
#   deploy/local/postgres.sh start    install PostgreSQL if missing, initdb once, start, create the database
#   deploy/local/postgres.sh stop     fast shutdown
#   deploy/local/postgres.sh status   exit 0 when the server answers
#
# The cluster lives in NOTIFIER_STATE_DIR (default <repo>/.local)/postgres, listens on
# 127.0.0.1:NOTIFIER_PG_PORT (default 15432) only, and trusts loopback connections: it is for
# development and tests, never for production. initdb and pg_ctl refuse to run as root, so as
# root they run as the 'postgres' system user.
#
# Roles: 'notifier' is the cluster's superuser (tests create a database per test with it, and
# `make run` uses it alone: the service then logs `single_database_role`). For the production
# layout the script also creates 'owner_notifier' (owns the database 'roles_notifier' and its
# schema: migrations) and 'app_notifier' (the service's: owns nothing), e.g.
#   NOTIFIER_MIGRATION_DATABASE_URL=postgresql://owner_notifier@127.0.0.1:15432/roles_notifier \
#   NOTIFIER_DATABASE_URL=postgresql://app_notifier@127.0.0.1:15432/roles_notifier notifier db migrate
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${NOTIFIER_PG_PORT:-15432}
state=${NOTIFIER_STATE_DIR:-$repo/.local}/postgres
data=$state/data
db=${NOTIFIER_PG_DB:-notifier}
user=notifier

log() { printf '[postgres] %s\n' "$*" >&2; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

install_pg() {
  bindir >/dev/null || "$here/prereqs.sh"
}

# Run a PostgreSQL server binary as the owner of the cluster.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ready() { "$(bindir)/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

start() {
  install_pg
  local bin
  bin=$(bindir)
  mkdir -p "$state"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$state"
    # postgres must be able to reach the state directory through the repo path
    local p=$state
    while [ "$p" != "/" ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb in $data"
    as_owner "$bin/initdb" -D "$data" -U "$user" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$state/initdb.log" 2>&1 \
      || { cat "$state/initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<EOF
# notifier local cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
max_connections = 100
shared_buffers = 128MB
fsync = on
EOF
  fi
  if ready; then
    log "already running on 127.0.0.1:$port"
  else
    log "starting on 127.0.0.1:$port"
    as_owner "$bin/pg_ctl" -D "$data" -l "$state/server.log" -w -t 60 start >/dev/null \
      || { tail -n 30 "$state/server.log" >&2; exit 1; }
  fi
  if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
    log "created database $db"
  fi
  roles "$bin"
  log "ready: postgresql://$user@127.0.0.1:$port/$db"
}

# The two roles of the production layout and a database owned by the owner role (idempotent).
roles() {
  local bin=$1 psql
  psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -v ON_ERROR_STOP=1 -q)
  "${psql[@]}" -d postgres <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'owner_notifier') THEN
    CREATE ROLE owner_notifier LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_notifier') THEN
    CREATE ROLE app_notifier LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
  END IF;
END $$;
SQL
  if ! "${psql[@]}" -d postgres -tAc "select 1 from pg_database where datname='roles_notifier'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" -O owner_notifier roles_notifier
    "${psql[@]}" -d roles_notifier -c "ALTER SCHEMA public OWNER TO owner_notifier"
    log "created database roles_notifier (owner owner_notifier; service role app_notifier)"
  fi
}

stop() {
  local bin
  bin=$(bindir) || { log "not installed"; return 0; }
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null && log "stopped"
  else
    log "not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ready && echo "postgres up on 127.0.0.1:$port" || { echo "postgres down"; exit 1; } ;;
  reset) stop; rm -rf "$state"; log "state removed" ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
