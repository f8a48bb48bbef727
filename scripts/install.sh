#!/usr/bin/env bash
# Install agentlane into ./.venv (idempotent). Usage: bash scripts/install.sh [extras]
#   extras: comma-separated pip extras, e.g. "test,infra". "embedded" (the PostgreSQL binaries that
#   `agentlane dev` and the tests start) is always installed: this script sets up a dev machine.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="embedded${1:+,$1}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${extras}]"
# The Python client (its own light distribution): the tests and the examples use it.
.venv/bin/python -m pip install --quiet -c constraints.txt -e clients/python
