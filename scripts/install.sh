#!/usr/bin/env bash
# Install agentlane into ./.venv (idempotent). Usage: bash scripts/install.sh [extras]
#   extras: comma-separated pip extras, e.g. "test,infra" (default: none)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${extras}]"
else
  .venv/bin/python -m pip install --quiet -c constraints.txt -e .
fi
