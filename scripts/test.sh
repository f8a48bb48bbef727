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
# index, leases and fences, the audit's reads, blob references, the engine's journal and history
# queries, runners through a Postgres restart and lease handovers, and the wheel's migrate. Logic
# that only rides on them (model clients, what-if, version pinning, shard plans, dispatch policy,
# anchors' signatures, the CLI's error lines, and the core's HTTP limits, logs, tracing, JWT keys,
# settings, prices and transcript fold) runs once, above, to keep CI within its budget.
# AGENTLANE_SECOND_POSTGRES= (empty) skips this run.
second="${AGENTLANE_SECOND_POSTGRES-/usr/lib/postgresql/15/bin}"
if [ -n "$second" ]; then
  echo "== the database tests on $("$second/postgres" --version)"
  TEST_POSTGRES_BIN="$second" exec .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/core --ignore=tests/core/test_http_limits.py --ignore=tests/core/test_service_shutdown.py \
    --ignore=tests/core/test_logs.py --ignore=tests/core/test_telemetry.py \
    --ignore=tests/core/test_jwks.py --ignore=tests/core/test_settings.py \
    --ignore=tests/core/test_transcript.py --ignore=tests/core/test_pricing.py \
    --ignore=tests/core/test_auth_secret_file.py \
    tests/replay/test_verify_tampering.py tests/replay/test_verify_invariants.py \
    tests/replay/test_rebuild.py tests/replay/test_export.py tests/replay/test_partitions.py \
    tests/blobs/test_blob_runs.py \
    tests/engine/test_engine.py tests/engine/test_fork.py tests/engine/test_unload_race.py \
    tests/runners_process/test_process_failures.py::test_postgres_restart_under_load_reconnects_without_a_storm \
    tests/runners_process/test_runner_component.py tests/dev/test_wheel.py
fi
