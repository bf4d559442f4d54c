#!/usr/bin/env bash
# Installs the system packages the project needs, once: cmake and the curl
# headers for rdkafka's bundled librdkafka build (see shared/STACK.md), and
# PostgreSQL for the local stack, and docker-compose (only to validate
# docker-compose.yml in the tests: no Docker engine runs here). Does nothing
# when they are present.
set -euo pipefail
needed=()
for pkg in cmake libcurl4-openssl-dev postgresql docker-compose; do
  dpkg -s "$pkg" >/dev/null 2>&1 || needed+=("$pkg")
done
if ((${#needed[@]})); then
  echo "installing system packages: ${needed[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${needed[@]}" >&2
fi
