#!/usr/bin/env bash
# Usage: scripts/demo.sh [config.yaml]
# Without a config: starts a throwaway PostgreSQL 15 and a Doorman in front of it.
# With a config: runs the Doorman data plane on it.
set -euo pipefail

# npm runs scripts from the repo root and records the caller's directory in INIT_CWD.
caller_dir=${INIT_CWD:-$PWD}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x /usr/lib/postgresql/15/bin/postgres ]] || ! command -v psql >/dev/null 2>&1; then
  bash scripts/setup-system.sh
fi

# npm keeps a copy of the lock it installed from in node_modules/.package-lock.json.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

npm run --silent build

# A relative config path is resolved against the directory the user ran us from.
args=()
for arg in "$@"; do
  if [[ "$arg" != /* && -e "$caller_dir/$arg" ]]; then
    args+=("$caller_dir/$arg")
  else
    args+=("$arg")
  fi
done

exec node integration/dist/demo.js "${args[@]}"
