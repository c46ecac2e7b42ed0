# Sourced by backup.sh and restore.sh: keeps database passwords off the command line.
#
#   pgpass_url URL   sets pg_url to URL without its password, and adds the password (URL-decoded)
#                    to a private PGPASSFILE (mode 600, removed on exit) that pg_dump, pg_restore
#                    and psql read. Anything on a command line is visible to every user in `ps`.
#                    (Not called as $(...): a subshell could not export PGPASSFILE.)
_pgpass_file=""
_pgpass_cleanup() { if [ -n "$_pgpass_file" ]; then rm -f "$_pgpass_file"; fi; }
trap _pgpass_cleanup EXIT

pgpass_url() {
  local url=$1 re='^([a-z]+://)([^:@/?#]*):([^@/?#]*)@(.*)$' pw
  if [[ $url =~ $re ]]; then
    pw=${BASH_REMATCH[3]}
    url="${BASH_REMATCH[1]}${BASH_REMATCH[2]}@${BASH_REMATCH[4]}"
    pw=$(printf '%b' "${pw//%/\\x}")  # URL-decode
    if [ -z "$_pgpass_file" ]; then
      _pgpass_file=$(umask 077 && mktemp "${TMPDIR:-/tmp}/notifier-pgpass.XXXXXX")
      export PGPASSFILE=$_pgpass_file
    fi
    pw=${pw//\\/\\\\}
    printf '*:*:*:*:%s\n' "${pw//:/\\:}" >>"$_pgpass_file"
  fi
  pg_url=$url
}
