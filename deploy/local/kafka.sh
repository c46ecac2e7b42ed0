#!/usr/bin/env bash
# Apache Kafka 3.9.1 for local development and CI, assembled from Maven Central (no Docker).
#
#   deploy/local/kafka.sh start    assemble (once, cached), format KRaft storage, start, wait until ready
#   deploy/local/kafka.sh stop     SIGTERM and wait for a clean shutdown
#   deploy/local/kafka.sh status   exit 0 when the broker answers
#
# Environment: NOTIFIER_KAFKA_PORT (default 19092), NOTIFIER_KAFKA_CONTROLLER_PORT (19093),
# NOTIFIER_STATE_DIR (default <repo>/.local), NOTIFIER_CACHE_DIR (default ~/.cache/notifier).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=3.9.1
port=${NOTIFIER_KAFKA_PORT:-19092}
ctl_port=${NOTIFIER_KAFKA_CONTROLLER_PORT:-19093}
state=${NOTIFIER_STATE_DIR:-$repo/.local}/kafka
cache=${NOTIFIER_CACHE_DIR:-$HOME/.cache/notifier}
libs=$cache/kafka-$version/libs
pidfile=$state/kafka.pid
logdir=$state/logs

log() { printf '[kafka] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

assemble() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  { command -v java && command -v mvn; } >/dev/null || "$here/prereqs.sh"
  log "assembling Kafka $version from Maven Central into $libs (once; cached)"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -B -q -f "$here/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"
  ls "$libs"/kafka_2.13-$version.jar >/dev/null
  touch "$libs/.complete"
}

configure() {
  mkdir -p "$state/data" "$logdir"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$ctl_port|g" -e "s|@DATA_DIR@|$state/data|g" \
    "$here/kafka/server.properties.in" >"$state/server.properties"
  if [ ! -f "$state/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22])')
    log "formatting KRaft storage (cluster $cluster_id)"
    java -cp "$libs/*" -Dlog4j.configuration="file:$here/kafka/log4j.properties" -Dkafka.logs.dir="$logdir" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$state/server.properties" --ignore-formatted >"$logdir/format.log" 2>&1 \
      || { cat "$logdir/format.log" >&2; exit 1; }
  fi
}

start() {
  if pid=$(running_pid) && port_open "$port"; then
    log "already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  if port_open "$port"; then
    log "port $port is taken by another process: stop it or set NOTIFIER_KAFKA_PORT"
    exit 1
  fi
  assemble
  configure
  log "starting broker on 127.0.0.1:$port"
  : >"$logdir/stdout.log"
  nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$here/kafka/log4j.properties" -Dkafka.logs.dir="$logdir" \
    -cp "$libs/*" kafka.Kafka "$state/server.properties" >"$logdir/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + 90))
  until grep -q 'Kafka Server started' "$logdir/server.log" 2>/dev/null && port_open "$port"; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "broker exited during start-up; last lines:"
      tail -n 30 "$logdir/server.log" "$logdir/stdout.log" >&2 || true
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "broker not ready after 90 s; see $logdir/server.log"
      exit 1
    fi
    sleep 0.5
  done
  log "ready on 127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$pidfile"; return 0; fi
  log "stopping (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "still running after 30 s; killing"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) port_open "$port" && echo "kafka up on 127.0.0.1:$port" || { echo "kafka down"; exit 1; } ;;
  reset) stop; rm -rf "$state"; log "state removed" ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
