#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite on the embedded PostgreSQL (the
# newest major), then the database tests again on the oldest supported major (Debian's
# PostgreSQL 15). Usage: bash scripts/test.sh [pytest args]  (the args apply to the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/install.sh test,infra
.venv/bin/python -m pytest "$@"
# The tests whose SQL could behave differently on the second major: the store, migrations, the run
# index, leases and fences, the audit reads, the engine's journal and history queries, runner
# processes through Postgres failures, and the wheel's migrate. Logic that only rides on them
# (model clients, what-if, version pinning, shard plans) runs once, above, to keep CI within its
# budget. AGENTLANE_SECOND_POSTGRES= (empty) skips this run.
second="${AGENTLANE_SECOND_POSTGRES-/usr/lib/postgresql/15/bin}"
if [ -n "$second" ]; then
  echo "== the database tests on $("$second/postgres" --version)"
  TEST_POSTGRES_BIN="$second" exec .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/core tests/replay \
    tests/engine/test_engine.py tests/engine/test_fork.py tests/engine/test_unload_race.py \
    tests/runners_process/test_process_failures.py tests/runners_process/test_runner_component.py \
    tests/runners_process/test_fair_dispatch.py tests/runners_process/test_run_deadline.py \
    tests/runners_process/test_budget_cap.py tests/dev/test_wheel.py
fi
