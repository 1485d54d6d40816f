#!/usr/bin/env bash
# Usage: scripts/fleet.sh
# Starts a local Doorman fleet on loopback: a throwaway PostgreSQL 15, etcd, two control-plane replicas
# and two data planes in agent mode; applies deploy/examples/pools.yaml and prints how to connect.
# Ctrl-C stops everything.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x /usr/lib/postgresql/15/bin/postgres || ! -x /usr/bin/etcd ]] || ! command -v psql >/dev/null 2>&1; then
  bash scripts/setup-system.sh
fi

# npm keeps a copy of the lock it installed from in node_modules/.package-lock.json.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

npm run --silent build

exec node integration/dist/fleet.js
