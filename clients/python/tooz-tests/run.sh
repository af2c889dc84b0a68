#!/bin/sh
# Runs tooz's own driver test suite (Debian 12 python3-tooz 3.1.0) against a running lease
# service: tooz-tests/run.sh [lease://127.0.0.1:8080] [pytest args...]
# Needs: apt-get install python3-tooz python3-pytest python3-fixtures python3-testtools
set -e
here=$(cd "$(dirname "$0")" && pwd)
url=${1:-lease://127.0.0.1:8080}
[ $# -gt 0 ] && shift
tests=$(/usr/bin/python3 -c "import tooz, os; print(os.path.dirname(tooz.__file__))")/tests/test_coordination.py
cd /tmp
TOOZ_TEST_URL="$url" PYTHONPATH="$here/..:$here/site${PYTHONPATH:+:$PYTHONPATH}" \
  exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfs "$tests" "$@"
