#!/usr/bin/env bash
# Full test run: system packages, dependencies, build, unit tests, integration
# tests. Both test stages always run; the exit code is non-zero if either failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec </dev/null

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
bash scripts/setup-system.sh

step "npm dependencies"
# npm keeps a copy of the lock it installed from in node_modules/.package-lock.json.
if [[ "${CI:-}" == "true" || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  echo "node_modules up to date"
fi

step "generated code is fresh"
bash scripts/gen-proto.sh --check

step "build"
npm run --silent build

unit_rc=0
integration_rc=0

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

step "unit tests"
npm run --silent test:unit 2>&1 | tee "$logs/unit.log" || unit_rc=$?

step "integration tests"
npm run --silent test:integration 2>&1 | tee "$logs/integration.log" || integration_rc=$?

# node's runner prints "# pass N" / "# fail N" per stage; one combined line for whoever reads the end.
count() { awk -v k="# $1" 'index($0, k" ") == 1 { n += $3 } END { print n + 0 }' "$logs"/*.log; }

verdict() { if [[ "$1" -eq 0 ]]; then echo "passed"; else echo "FAILED (exit $1)"; fi; }
printf '\n==> summary\n'
printf '  unit tests:        %s\n' "$(verdict "$unit_rc")"
printf '  integration tests: %s\n' "$(verdict "$integration_rc")"
printf '%s passed, %s failed, %s skipped\n' "$(count pass)" "$(count fail)" "$(count skipped)"

if [[ "$unit_rc" -ne 0 || "$integration_rc" -ne 0 ]]; then
  exit 1
fi
