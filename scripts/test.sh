#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite on the embedded PostgreSQL (the
# newest major), then the database tests again on the oldest supported major (Debian's
# PostgreSQL 15). Usage: bash scripts/test.sh [pytest args]  (the args apply to the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/install.sh test,infra
.venv/bin/python -m pytest "$@"
# The store, migration, engine, runner (with real processes) and replay tests, and the wheel's
# migrate, on the second major. AGENTLANE_SECOND_POSTGRES= (empty) skips this run.
second="${AGENTLANE_SECOND_POSTGRES-/usr/lib/postgresql/15/bin}"
if [ -n "$second" ]; then
  echo "== the database tests on $("$second/postgres" --version)"
  TEST_POSTGRES_BIN="$second" exec .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/core tests/replay tests/runners tests/engine tests/runners_process tests/dev/test_wheel.py
fi
