#!/usr/bin/env bash
# The bench command for the HTTP and Kafka paths (BENCHMARKS.md):
#
#   scripts/bench.sh all               every measurement into one report
#   scripts/bench.sh ingest            ingest vs its ceilings, 32 connections, 20 s each
#   scripts/bench.sh end-to-end        1,000 webhooks/s for 60 s into PostgreSQL
#   scripts/bench.sh --smoke ingest    a 2 s run that only proves it works
#   scripts/bench.sh --help            every scenario and option
#
# Builds the release binaries, starts the local infrastructure (broker,
# PostgreSQL, registry) on bench ports in a throw-away directory, runs
# `estate-bench` with the arguments given, and stops everything. Results,
# report.md and the chart bench.svg go to ./bench-results (or --out DIR).
# Ports: BENCH_BROKER_PORT (59092), BENCH_REGISTRY_PORT (58081),
# BENCH_PG_PORT (55432).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/estate-bench"

if [[ $# -eq 0 || " $* " == *" --help "* || " $* " == *" -h "* ]]; then
  (cd "$ROOT" && cargo build --release --quiet -p bench)
  "$BENCH" "${@:---help}"
  exit 0
fi

"$ROOT/scripts/install-deps.sh"
export ESTATE_PROFILE=release
source "$ROOT/scripts/throwaway-stack.sh"
throwaway_stack bench "${ESTATE_BENCH_HOME:-}" "${BENCH_BROKER_PORT:-59092}" \
  "${BENCH_REGISTRY_PORT:-58081}" "${BENCH_PG_PORT:-55432}"
"$BENCH" --brokers "127.0.0.1:$BROKER_PORT" --registry "http://127.0.0.1:$REGISTRY_PORT" \
  --pg-port "$PG_PORT" --bin-dir "$TARGET_DIR/release" "$@"
