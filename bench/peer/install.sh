#!/usr/bin/env bash
# Installs the comparison receiver's Python packages (requirements.txt beside
# this script) into a venv cached by the file's hash, once, and prints the
# venv's python. A second run finds it and returns at once. Used by
# scripts/bench.sh (and by estate-bench when it is given no --peer-python).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQUIREMENTS="$HERE/requirements.txt"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/estate-pipeline"
PY_ENV="$CACHE_ROOT/py-peer-$(sha256sum "$REQUIREMENTS" | cut -c1-12)"
if [[ ! -x "$PY_ENV/bin/python" ]]; then
  echo "==> installing the Python comparison receiver into $PY_ENV" >&2
  mkdir -p "$CACHE_ROOT"
  rm -rf "$PY_ENV.partial"
  python3 -m venv "$PY_ENV.partial" \
    || { echo "error: python3 -m venv failed (is python3-venv installed?)" >&2; exit 1; }
  if ! "$PY_ENV.partial/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" >&2; then
    rm -rf "$PY_ENV.partial"
    echo "error: pip could not install $REQUIREMENTS (PyPI unreachable, or a pinned version gone?);" \
      "the ingest scenario needs it for the Python comparison receiver" >&2
    exit 1
  fi
  mv "$PY_ENV.partial" "$PY_ENV"
fi
echo "$PY_ENV/bin/python"
