#!/usr/bin/env bash
# Installs the local Kafka-API broker (nisshi, pinned) into a cache outside the
# clone, once. A second run finds it and returns at once.
set -euo pipefail
NISSHI_VERSION="${NISSHI_VERSION:-0.8.1}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/estate-pipeline"
PREFIX="$CACHE_ROOT/nisshi-$NISSHI_VERSION"
BIN="$PREFIX/bin/nisshi"
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$PREFIX"
echo "building nisshi $NISSHI_VERSION into $PREFIX (about 20 minutes, once)" >&2
# --ignore-rust-version: its rama dependency declares rustc 1.96; it builds and
# runs on 1.95 (see shared/STACK.md).
CARGO_TARGET_DIR="$CACHE_ROOT/nisshi-build" \
  cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
  --root "$PREFIX.partial" >&2
mv "$PREFIX.partial/bin" "$PREFIX/bin"
rm -rf "$PREFIX.partial" "$CACHE_ROOT/nisshi-build"
echo "$BIN"
