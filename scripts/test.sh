#!/usr/bin/env bash
# The project's test command (the one in the README, and what CI runs):
# formatting and lints, then every unit and integration test. Integration
# tests run against a real local stack (nisshi broker, PostgreSQL, the
# development schema registry) started here on test ports in a throw-away
# directory, so a running `scripts/stack.sh up` is not disturbed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

# Python test tools, cached by the requirements' hash: the stock
# confluent-kafka client, to prove the wire format and the development
# registry against a client we did not write, and schemathesis, which
# fuzzes a live ingest against its OpenAPI document (tests/openapi_fuzzed.rs).
PY_ENV="${XDG_CACHE_HOME:-$HOME/.cache}/estate-pipeline/py-$(sha256sum tests/python/requirements.txt | cut -c1-12)"
if [[ ! -x "$PY_ENV/bin/python" ]]; then
  echo "==> installing the Python test client into $PY_ENV" >&2
  rm -rf "$PY_ENV.partial"
  python3 -m venv "$PY_ENV.partial"
  "$PY_ENV.partial/bin/pip" install -q -r tests/python/requirements.txt
  mv "$PY_ENV.partial" "$PY_ENV"
fi
export ESTATE_TEST_PYTHON="$PY_ENV/bin/python"

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings

source "$ROOT/scripts/throwaway-stack.sh"
throwaway_stack test "${ESTATE_TEST_HOME:-}" "${TEST_BROKER_PORT:-19092}" \
  "${TEST_REGISTRY_PORT:-18081}" "${TEST_PG_PORT:-15432}"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export ESTATE_TEST_BROKERS="127.0.0.1:$BROKER_PORT"
export ESTATE_TEST_REGISTRY="http://127.0.0.1:$REGISTRY_PORT"
export ESTATE_TEST_PG_PORT="$PG_PORT"
export ESTATE_TEST_BIN_DIR="$TARGET_DIR/debug"

echo "==> cargo test (unit and integration tests)" >&2
cargo test --workspace "$@"

# The bench command, briefly, so it keeps working (BENCHMARKS.md). Its
# figures mean nothing here: debug build, 2 s, shared machine.
echo "==> bench smoke (no thresholds)" >&2
"$TARGET_DIR/debug/estate-bench" --brokers "$ESTATE_TEST_BROKERS" --bin-dir "$TARGET_DIR/debug" \
  --registry "$ESTATE_TEST_REGISTRY" --pg-port "$PG_PORT" --out "$ESTATE_HOME/bench-smoke" --smoke all >/dev/null

# Every provider parser under cargo-fuzz for a bounded time: a panic, or an
# event that does not fit the schema, fails the run.
echo "==> fuzzing the parsers (${FUZZ_SECONDS:-20} s each)" >&2
"$ROOT/scripts/fuzz.sh" "${FUZZ_SECONDS:-20}"
