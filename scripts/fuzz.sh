#!/usr/bin/env bash
# Fuzzes every provider parser with cargo-fuzz (libFuzzer), one target per
# parser (fuzz/fuzz_targets/), each for a bounded time:
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]    default 60
#   scripts/fuzz.sh --help
#
# A target fails on a panic or on an event that does not fit the Avro
# schema; the failing input is kept under fuzz/artifacts/<target>/ and the
# script exits non-zero. Each run starts from the parser's fixtures
# (tests/fixtures/<target in kebab-case>/*.json) plus what earlier runs
# found, kept under the cache.
# cargo-fuzz is installed from crates.io once, cached by version under
# ${XDG_CACHE_HOME:-$HOME/.cache}/estate-pipeline/, with its build directory.
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take the sanitizer
# flags cargo-fuzz passes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_FUZZ_VERSION=0.13.2
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/estate-pipeline"
CARGO_FUZZ="$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION/bin/cargo-fuzz"

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
SECONDS_PER_TARGET="${1:-60}"
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || {
  echo "error: SECONDS_PER_TARGET must be a positive whole number, got '$SECONDS_PER_TARGET'" >&2
  exit 2
}

if [[ ! -x "$CARGO_FUZZ" ]]; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION into $CACHE" >&2
  rm -rf "$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION.partial"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet \
    --root "$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION.partial"
  mv "$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION.partial" "$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
cd "$ROOT"
TARGETS="$("$CARGO_FUZZ" list)"
# A target is named after its parser's module (stream_estate); the
# parser's fixtures are in the module's kebab-case folder (stream-estate).
# Every target's seeds are checked before anything is built or fuzzed.
for target in $TARGETS; do
  seeds="tests/fixtures/${target//_/-}"
  compgen -G "$seeds/*.json" >/dev/null || {
    echo "error: fuzz target $target has no seeds: no $seeds/*.json (name the folder after the parser)" >&2
    exit 1
  }
done
echo "==> building the fuzz targets" >&2
"$CARGO_FUZZ" build -O >&2
for target in $TARGETS; do
  corpus="$CACHE/fuzz-corpus/$target"
  mkdir -p "$corpus"
  cp "tests/fixtures/${target//_/-}"/*.json "$corpus/"
  log="$CACHE/fuzz-$target.log"
  echo "==> fuzzing $target for ${SECONDS_PER_TARGET} s" >&2
  if ! "$CARGO_FUZZ" run -O "$target" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: $target failed (full log: $log; failing input under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" | sed "s/^/   $target /" >&2 || true
done
echo "==> every parser ran clean" >&2
