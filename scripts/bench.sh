#!/usr/bin/env bash
# The bench command for the HTTP and Kafka paths (BENCHMARKS.md):
#
#   scripts/bench.sh all               every measurement into one report
#   scripts/bench.sh ingest            ingest vs its ceilings and the Python peer on
#                                      sqlite:// and memory://, 32 and 256 connections,
#                                      20 s each, then open loop (about 30 minutes)
#   scripts/bench.sh end-to-end        1,000 webhooks/s for 60 s into PostgreSQL
#   scripts/bench.sh --smoke ingest    a short run that only proves it works
#   scripts/bench.sh --help            every scenario and option
#
# Builds the release binaries, starts the local infrastructure (broker,
# PostgreSQL, registry) on bench ports in a throw-away directory, runs
# `estate-bench` with the arguments given, and stops everything. Results,
# report.md and the chart bench.svg go to ./bench-results (or --out DIR).
#
# The ingest and end-to-end scenarios also get a second nisshi broker with
# `memory://` storage (not durable: it shows the pipeline's own cost beside
# the durable `sqlite://` one; the registry and PostgreSQL stay shared), and
# the ingest scenario the Python comparison receiver (bench/peer/), whose
# packages bench/peer/install.sh puts in a venv cached by their hash.
# Ports: BENCH_BROKER_PORT (59092), BENCH_MEMORY_BROKER_PORT (59093),
# BENCH_REGISTRY_PORT (58081), BENCH_PG_PORT (55432).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/estate-bench"

if [[ $# -eq 0 || " $* " == *" --help "* || " $* " == *" -h "* ]]; then
  (cd "$ROOT" && cargo build --release --quiet -p bench)
  "$BENCH" "${@:---help}"
  exit 0
fi

# The scenario: the first argument that names one.
scenario=""
for arg in "$@"; do
  case "$arg" in ingest | end-to-end | catch-up | enrich | all | render) scenario="$arg"; break ;; esac
done
if [[ "$scenario" == render ]]; then
  (cd "$ROOT" && cargo build --release --quiet -p bench)
  exec "$BENCH" "$@"
fi

extra=()
# Before the stack starts, so a failed install costs nothing else.
if [[ "$scenario" == ingest || "$scenario" == all ]]; then
  PEER_PYTHON="$("$ROOT/bench/peer/install.sh")" \
    || { echo "error: cannot install the Python comparison receiver (see above)" >&2; exit 1; }
  extra+=(--peer-python "$PEER_PYTHON")
fi

"$ROOT/scripts/install-deps.sh"
export ESTATE_PROFILE=release
source "$ROOT/scripts/throwaway-stack.sh"
throwaway_stack bench "${ESTATE_BENCH_HOME:-}" "${BENCH_BROKER_PORT:-59092}" \
  "${BENCH_REGISTRY_PORT:-58081}" "${BENCH_PG_PORT:-55432}"

MEMORY_PORT="${BENCH_MEMORY_BROKER_PORT:-59093}"
MEMORY_PID_FILE="$ESTATE_HOME/run/broker-memory.pid"
MEMORY_LOG="$ESTATE_HOME/logs/broker-memory.log"

memory_broker_up() {
  local nisshi i
  nisshi="$("$ROOT/scripts/install-broker.sh")"
  if (exec 3<>"/dev/tcp/127.0.0.1/$MEMORY_PORT") 2>/dev/null; then
    echo "error: port $MEMORY_PORT is taken; set BENCH_MEMORY_BROKER_PORT" >&2
    exit 1
  fi
  echo "==> starting the memory:// broker (nisshi) on 127.0.0.1:$MEMORY_PORT" >&2
  mkdir -p "$ESTATE_HOME/broker-memory"
  # Its own level, as the stack's broker: a RUST_LOG meant for our services slows nisshi down.
  # `cd` first, on its own: `cd && cmd &` would background a subshell, and
  # $! would be that subshell's pid, not the broker's.
  (
    cd "$ESTATE_HOME/broker-memory"
    RUST_LOG="${BROKER_LOG:-warn}" nohup "$nisshi" broker \
      --listener-url "tcp://127.0.0.1:$MEMORY_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$MEMORY_PORT" \
      --storage-engine "memory://" >>"$MEMORY_LOG" 2>&1 &
    echo $! >"$MEMORY_PID_FILE"
  )
  for ((i = 0; i < 300; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MEMORY_PORT") 2>/dev/null && break
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$MEMORY_PORT") 2>/dev/null \
    || { tail -n 20 "$MEMORY_LOG" >&2; echo "error: the memory:// broker did not start" >&2; exit 1; }
  "$TARGET_DIR/release/create-topics" --brokers "127.0.0.1:$MEMORY_PORT" >>"$MEMORY_LOG" 2>&1 \
    || { tail -n 20 "$MEMORY_LOG" >&2; echo "error: topic setup on the memory:// broker failed" >&2; exit 1; }
}

memory_broker_down() {
  local pid i
  [[ -f "$MEMORY_PID_FILE" ]] || return 0
  pid="$(cat "$MEMORY_PID_FILE")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$MEMORY_PID_FILE"
  echo "stopped the memory:// broker" >&2
}

if [[ "$scenario" == ingest || "$scenario" == end-to-end || "$scenario" == all ]]; then
  trap 'memory_broker_down; throwaway_stack_down' EXIT
  memory_broker_up
  extra+=(--memory-brokers "127.0.0.1:$MEMORY_PORT")
fi

"$BENCH" --brokers "127.0.0.1:$BROKER_PORT" --registry "http://127.0.0.1:$REGISTRY_PORT" \
  --pg-port "$PG_PORT" --bin-dir "$TARGET_DIR/release" "${extra[@]}" "$@"
