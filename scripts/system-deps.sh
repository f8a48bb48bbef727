#!/usr/bin/env bash
# What the test suite needs beyond Python: Debian packages (installed only when missing; needs root
# or sudo: chromium, Node, Java and the Pub/Sub emulator, PostgreSQL 15 as the second major,
# promtool) and the npm packages of the browser test and of the TypeScript client (from their
# lockfiles).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v gcloud >/dev/null 2>&1 || missing+=(google-cloud-cli)
[ -d /usr/lib/google-cloud-sdk/platform/pubsub-emulator ] || missing+=(google-cloud-cli-pubsub-emulator)
# promtool, for the alert rules' tests (tests/infra/test_alert_rules.py).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The second PostgreSQL major the database tests run on (scripts/test.sh).
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
npm ci --prefix tests/gateway/browser --no-audit --no-fund --loglevel=error >/dev/null
npm ci --prefix clients/typescript --no-audit --no-fund --loglevel=error >/dev/null
