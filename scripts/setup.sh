#!/usr/bin/env bash
# Installs what the service needs on a Debian machine with Node 20+: redis-server and
# redis-sentinel (from apt, when missing) and the npm dependencies (npm ci). With --test,
# also what the test suite needs: promtool (Debian's prometheus package), a headless
# browser (Debian's chromium), python3 and python3-tooz (the Python tests). With --bench,
# also what the benchmark compares against: etcd (Debian's etcd-server; without it `npm
# run bench` says that etcd was skipped). Both flags may be given: --test --bench
set -euo pipefail
cd "$(dirname "$0")/.."

test=false
bench=false
for arg in "$@"; do
  case "$arg" in
    --test) test=true ;;
    --bench) bench=true ;;
    *) echo "usage: bash scripts/setup.sh [--test] [--bench]" >&2; exit 2 ;;
  esac
done

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
# Sentinel mode (npm run ha, and the failover tests): Debian ships it apart.
command -v redis-sentinel >/dev/null 2>&1 || packages+=(redis-sentinel)
if [ "$test" = true ]; then
  command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
  # The Python client's tests (standard library only), and tooz's own driver test suite
  # run against the tooz driver (Debian's python3-tooz ships it; it needs pytest, fixtures
  # and testtools). Debian's packages are for /usr/bin/python3.
  command -v python3 >/dev/null 2>&1 || packages+=(python3)
  /usr/bin/python3 -c 'import tooz, pytest, fixtures, testtools' >/dev/null 2>&1 ||
    packages+=(python3-tooz python3-pytest python3-fixtures python3-testtools)
fi
if [ "$bench" = true ]; then
  # The bench's etcd scenario: a private single-member etcd on loopback (no service is started).
  command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
fi

if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing ${packages[*]} with apt-get" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # No recommends: the prometheus package would pull in node-exporter and friends.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
