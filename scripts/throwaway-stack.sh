# Sourced by scripts/test.sh and scripts/bench.sh: starts the local
# infrastructure (broker, PostgreSQL, registry, topics) in a throw-away
# ESTATE_HOME on its own ports, so a running `scripts/stack.sh up` is not
# disturbed, and stops it (and deletes it) when the calling script exits.
#
#   throwaway_stack NAME KEPT_HOME BROKER_PORT REGISTRY_PORT PG_PORT
#
# KEPT_HOME, when not empty, is used instead of a fresh directory and kept
# afterwards; KEEP_TEST_STACK=1 keeps the fresh one too. Needs ROOT set.

throwaway_stack() {
  local name="$1" kept_home="$2"
  export ESTATE_HOME="${kept_home:-$(mktemp -d "/tmp/estate-$name-stack.XXXXXX")}"
  export BROKER_PORT="$3" REGISTRY_PORT="$4" PG_PORT="$5"
  THROWAWAY_DELETE=0
  [[ -z "$kept_home" && "${KEEP_TEST_STACK:-0}" != 1 ]] && THROWAWAY_DELETE=1
  trap throwaway_stack_down EXIT
  "$ROOT/scripts/stack.sh" infra
}

throwaway_stack_down() {
  "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
  if [[ "$THROWAWAY_DELETE" == 1 ]]; then rm -rf "$ESTATE_HOME"; fi
}
