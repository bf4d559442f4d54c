#!/usr/bin/env bash
# The local stack, without Docker: a nisshi Kafka-API broker (sqlite storage),
# PostgreSQL from Debian's packages, the development schema registry, the
# topics, and the five pipeline services (ingest, normalize, dedupe, the
# state writer and the sink).
#
#   scripts/stack.sh up      install what is missing (once, cached), start
#                            everything, print where to send webhooks, and
#                            stay in the foreground; Ctrl-C stops it all
#   scripts/stack.sh down    stop everything a previous `up`/`infra` started
#   scripts/stack.sh infra   start only broker, PostgreSQL, registry, topics
#                            (in the background; the tests use this)
#   scripts/stack.sh status  show what is running
#
# Data (broker, PostgreSQL, logs) lives in $ESTATE_HOME and survives restarts.
# Ports: BROKER_PORT (9092), REGISTRY_PORT (8081), PG_PORT (5432),
# INGEST_PORT (8080), INGEST_ADMIN_PORT (9100: ingest's /healthz, /readyz and
# /metrics, on loopback). BROKER_LOG (warn) is the broker's own RUST_LOG;
# BROKER_STORAGE_QUERY (empty) adds options to its storage URL, e.g.
# `maintenance_interval=5s`.
# Installs are cached under $ESTATE_CACHE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ESTATE_HOME="${ESTATE_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/estate-pipeline}"
export ESTATE_CACHE="${ESTATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/estate-pipeline}"
BROKER_PORT="${BROKER_PORT:-9092}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
PG_PORT="${PG_PORT:-5432}"
INGEST_PORT="${INGEST_PORT:-8080}"
INGEST_ADMIN_PORT="${INGEST_ADMIN_PORT:-9100}"
PROFILE="${ESTATE_PROFILE:-dev}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ "$PROFILE" == "dev" ]]; then BIN_DIR="$TARGET_DIR/debug"; else BIN_DIR="$TARGET_DIR/$PROFILE"; fi
RUN="$ESTATE_HOME/run"
LOGS="$ESTATE_HOME/logs"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name seconds logfile
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  [[ -n "${4:-}" && -f "$4" ]] && tail -n 20 "$4" >&2
  die "$2 did not open port $1 within $3 s (log: ${4:-none})"
}

pid_alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: runs a process in the background, logging to $LOGS.
start() {
  local name="$1"; shift
  if pid_alive "$name"; then say "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  nohup "$@" >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

stop() {
  local name="$1" pid i
  [[ -f "$RUN/$name.pid" ]] || return 0
  pid="$(cat "$RUN/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    echo "stopped $name" >&2
  fi
  rm -f "$RUN/$name.pid"
}

as_pg() { # run a PostgreSQL tool as the postgres user when we are root
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  "$ROOT/scripts/install-deps.sh"
  NISSHI="$("$ROOT/scripts/install-broker.sh")"
  [[ -x "$NISSHI" ]] || die "broker install failed"
  [[ -n "$PG_BIN" ]] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  say "building the services ($PROFILE profile)"
  (cd "$ROOT" && cargo build --profile "$PROFILE" --workspace --bins --quiet)
}

# Where the cluster lives. PostgreSQL refuses to run as root, so as root it
# runs as the `postgres` user, which must be able to reach its directory:
# $ESTATE_HOME/pg when it can (e.g. under /tmp), else a directory of its own
# under /var/lib/postgresql, named after $ESTATE_HOME so each stack keeps
# its own data (root's home is not open to other users).
pg_dir() {
  if [[ -n "${ESTATE_PG_DIR:-}" ]]; then echo "$ESTATE_PG_DIR"; return; fi
  if [[ $(id -u) -ne 0 ]]; then echo "$ESTATE_HOME/pg"; return; fi
  # Our own data directory may be opened for traversal; its parents are not ours to change.
  chmod o+x "$ESTATE_HOME" 2>/dev/null || true
  if runuser -u postgres -- test -x "$ESTATE_HOME" 2>/dev/null; then
    echo "$ESTATE_HOME/pg"
  else
    echo "/var/lib/postgresql/estate-pipeline-$(printf '%s' "$ESTATE_HOME" | sha256sum | cut -c1-12)"
  fi
}

start_postgres() {
  local dir data log
  dir="$(pg_dir)"; data="$dir/data"; log="$dir/postgres.log"
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  ln -sfn "$log" "$LOGS/postgres.log"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    say "creating the PostgreSQL cluster in $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >>"$log.init" 2>&1 \
      || { tail -n 20 "$log.init" >&2; die "initdb failed (log: $log.init)"; }
  fi
  if [[ -f "$data/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "PostgreSQL already running"
  else
    port_open "$PG_PORT" && die "port $PG_PORT is taken by another program; set PG_PORT to a free port"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 30 \
      -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c track_commit_timestamp=on" start >/dev/null \
      || { tail -n 20 "$log" >&2; die "PostgreSQL did not start (log: $log)"; }
  fi
  echo "$data" >"$RUN/postgres.data"
  # The stack's own role and database (trust auth on loopback: development only).
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtAc \
    "SELECT 1 FROM pg_roles WHERE rolname='estate'" | grep -q 1 \
    || "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE ROLE estate LOGIN CREATEDB"
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname='estate'" | grep -q 1 \
    || "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE estate OWNER estate"
}

stop_postgres() {
  local data
  [[ -f "$RUN/postgres.data" ]] || return 0
  data="$(cat "$RUN/postgres.data")"
  if [[ -f "$data/postmaster.pid" ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 && echo "stopped postgres" >&2 || true
  fi
  rm -f "$RUN/postgres.data"
}

start_infra() {
  mkdir -p "$RUN" "$LOGS" "$ESTATE_HOME/broker"
  install
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  start_postgres
  say "starting the broker (nisshi) on 127.0.0.1:$BROKER_PORT"
  if ! pid_alive broker; then
    port_open "$BROKER_PORT" && die "port $BROKER_PORT is taken by another program; set BROKER_PORT"
    # The broker logs at its own level: a RUST_LOG=info or debug meant for
    # our services makes nisshi log every request and run ~100x slower.
    local storage_options="${BROKER_STORAGE_QUERY:-}"
    storage_options="${storage_options#\?}"
    # compaction=single: nisshi's default compaction sweep (every 10 min)
    # runs one query per key of each compacted partition, each a scan of
    # the partition (its record table has no index on the key), so on
    # dedupe.seen's hundreds of thousands of keys one sweep kept a core busy
    # for as long as we watched; `single` does the same sweep in one
    # statement (about a second on a 1.1 GB broker.db; BENCHMARKS.md,
    # section 6). BROKER_STORAGE_QUERY's options come first, and nisshi takes
    # the first value of an option, so `compaction=multi` there wins.
    (cd "$ESTATE_HOME/broker" && RUST_LOG="${BROKER_LOG:-warn}" start broker "$NISSHI" broker \
      --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
      --storage-engine "sqlite://broker.db?${storage_options:+$storage_options&}compaction=single")
  fi
  wait_port "$BROKER_PORT" broker 30 "$LOGS/broker.log"
  say "creating topics"
  "$BIN_DIR/create-topics" --brokers "127.0.0.1:$BROKER_PORT" >>"$LOGS/create-topics.log" 2>&1 \
    || { tail -n 20 "$LOGS/create-topics.log" >&2; die "topic setup failed"; }
  say "starting the schema registry on 127.0.0.1:$REGISTRY_PORT"
  if ! pid_alive registry; then
    port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by another program; set REGISTRY_PORT"
    REGISTRY__LISTEN="127.0.0.1:$REGISTRY_PORT" REGISTRY__KAFKA__BROKERS="127.0.0.1:$BROKER_PORT" \
      start registry "$BIN_DIR/dev-registry"
  fi
  wait_port "$REGISTRY_PORT" registry 30 "$LOGS/registry.log"
}


start_services() {
  local kafka="127.0.0.1:$BROKER_PORT" registry="http://127.0.0.1:$REGISTRY_PORT"
  local db="host=127.0.0.1 port=$PG_PORT user=estate dbname=estate"
  say "starting sink, state-writer, enrich, dedupe, normalize, ingest"
  SINK__KAFKA__BROKERS="$kafka" SINK__SCHEMA_REGISTRY_URL="$registry" SINK__DATABASE_URL="$db" \
    start sink "$BIN_DIR/sink" --config "$ROOT/config/sink.toml"
  STATE_WRITER__KAFKA__BROKERS="$kafka" STATE_WRITER__SCHEMA_REGISTRY_URL="$registry" \
    start state-writer "$BIN_DIR/state-writer" --config "$ROOT/config/state-writer.toml"
  # Fluximmo enrichment is off unless FLUXIMMO_API_KEY (or
  # ENRICH__API__KEY_FILE) is set in the environment of this script; it
  # then calls ENRICH__API__BASE_URL (default https://api.fluximmo.io).
  ENRICH__KAFKA__BROKERS="$kafka" ENRICH__SCHEMA_REGISTRY_URL="$registry" \
    start enrich "$BIN_DIR/enrich" --config "$ROOT/config/enrich.toml"
  DEDUPE__KAFKA__BROKERS="$kafka" start dedupe "$BIN_DIR/dedupe" --config "$ROOT/config/dedupe.toml"
  NORMALIZE__KAFKA__BROKERS="$kafka" NORMALIZE__SCHEMA_REGISTRY_URL="$registry" \
    start normalize "$BIN_DIR/normalize" --config "$ROOT/config/normalize.toml"
  port_open "$INGEST_PORT" && ! pid_alive ingest && die "port $INGEST_PORT is taken; set INGEST_PORT"
  port_open "$INGEST_ADMIN_PORT" && ! pid_alive ingest \
    && die "port $INGEST_ADMIN_PORT is taken; set INGEST_ADMIN_PORT"
  INGEST__KAFKA__BROKERS="$kafka" INGEST__LISTEN="127.0.0.1:$INGEST_PORT" \
    INGEST__ADMIN_LISTEN="127.0.0.1:$INGEST_ADMIN_PORT" \
    start ingest "$BIN_DIR/ingest" --config "$ROOT/config/ingest.toml"
  wait_port "$INGEST_PORT" ingest 30 "$LOGS/ingest.log"
  sleep 1
  local s
  for s in sink state-writer enrich dedupe normalize ingest; do
    pid_alive "$s" || { tail -n 20 "$LOGS/$s.log" >&2; die "$s exited at start (log: $LOGS/$s.log)"; }
  done
}

down() {
  local s
  for s in ingest normalize dedupe enrich state-writer sink registry broker; do stop "$s"; done
  stop_postgres
}

print_welcome() {
  local body="$ROOT/tests/fixtures/generic/property.created.json"
  local enrichment="off: set FLUXIMMO_API_KEY (or ENRICH__API__KEY_FILE) before up to fetch Fluximmo properties"
  if [[ -n "${FLUXIMMO_API_KEY:-}${ENRICH__API__KEY_FILE:-}" ]]; then
    enrichment="on, calling ${ENRICH__API__BASE_URL:-https://api.fluximmo.io}"
  fi
  cat <<MSG

The pipeline is running.
  ingest            http://127.0.0.1:$INGEST_PORT/webhooks/{source}   (sources: config/ingest.toml)
  ingest operator   http://127.0.0.1:$INGEST_ADMIN_PORT/healthz, /readyz, /metrics
  schema registry   http://127.0.0.1:$REGISTRY_PORT
  Kafka             127.0.0.1:$BROKER_PORT
  PostgreSQL        psql -h 127.0.0.1 -p $PG_PORT -U estate estate
  logs              $LOGS/
  Fluximmo enrichment  $enrichment

Send the generic fixture, signed with the development secret of source "generic":
  ts=\$(date +%s); body=$body
  sig=\$(printf '%s' "\$ts" | cat - "\$body" | openssl dgst -sha256 -hmac 'dev-generic-secret' -r | cut -d' ' -f1)
  curl -sS -X POST http://127.0.0.1:$INGEST_PORT/webhooks/generic \\
    -H 'Content-Type: application/json' -H "X-Webhook-Timestamp: \$ts" -H "X-Webhook-Signature: \$sig" \\
    --data-binary @"\$body"

Or let ingest-send sign any file for any source of config/ingest.toml
(generic, fluximmo, stream-estate, immoteur, standard):
  $BIN_DIR/ingest-send --config $ROOT/config/ingest.toml --url http://127.0.0.1:$INGEST_PORT \\
    --source immoteur \\
    $ROOT/tests/fixtures/immoteur/property-notification.json

Then look at the rows:
  psql -h 127.0.0.1 -p $PG_PORT -U estate estate -c 'SELECT property_key, price, bedrooms, bathrooms, surface_m2, address FROM properties'

Ctrl-C (or scripts/stack.sh down) stops everything.
MSG
}

status() {
  local s
  for s in broker registry sink state-writer enrich dedupe normalize ingest; do
    if pid_alive "$s"; then echo "$s: running (pid $(cat "$RUN/$s.pid"))"; else echo "$s: stopped"; fi
  done
  if [[ -n "$PG_BIN" ]] && "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; then
    echo "postgres: running (port $PG_PORT)"
  else
    echo "postgres: stopped"
  fi
}

case "${1:-}" in
  up)
    # Stopping must finish even if the terminal or a pipe is gone: ignore a
    # second Ctrl-C and SIGPIPE while everything is stopped.
    on_stop() { trap '' INT TERM PIPE; say "stopping" || true; down || true; exit 0; }
    trap on_stop INT TERM
    start_infra
    start_services
    print_welcome
    while true; do
      for s in ingest normalize dedupe enrich state-writer sink registry broker; do
        if ! pid_alive "$s" && [[ " ${reported:-} " != *" $s "* ]]; then
          say "$s stopped unexpectedly; see $LOGS/$s.log"
          reported="${reported:-} $s"
        fi
      done
      sleep 5 & wait $!
    done
    ;;
  infra) start_infra; say "infrastructure ready (ESTATE_HOME=$ESTATE_HOME)" ;;
  down) down ;;
  status) status ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
