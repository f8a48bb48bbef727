#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/install.sh test,infra
exec .venv/bin/python -m pytest "$@"
