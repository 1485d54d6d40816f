#!/usr/bin/env bash
# Installs the Debian packages the test suite and the demo need, then makes sure
# the distribution's auto-created PostgreSQL cluster is not running (tests use
# their own throwaway clusters and must never depend on port 5432).
# Idempotent: a second run only checks.
set -euo pipefail

PACKAGES=(
  postgresql-15 postgresql-client-15 pgbouncer
  etcd-server etcd-client patroni
  protobuf-compiler
  python3-psycopg2 python3-psycopg python3-asyncpg
  libpostgresql-jdbc-java openssl
)

log() { printf 'setup-system: %s\n' "$*"; }

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  log "dpkg-query not found: this script supports Debian/Ubuntu only" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
  install_cmd="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ "$(id -u)" -ne 0 ]]; then
    log "missing packages: ${missing[*]}" >&2
    log "run as root: apt-get update && $install_cmd" >&2
    exit 1
  fi
  apt_log=$(mktemp)
  trap 'rm -f "$apt_log"' EXIT
  log "apt-get update"
  if ! apt-get update >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    exit 1
  fi
  log "installing: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    exit 1
  fi
else
  log "all ${#PACKAGES[@]} packages present"
fi

if command -v pg_lsclusters >/dev/null 2>&1; then
  # Columns: version cluster port status owner datadir logfile
  while read -r ver name _port status _rest; do
    [[ -z "${ver:-}" ]] && continue
    if [[ "$status" == online* ]]; then
      if [[ "$(id -u)" -eq 0 ]]; then
        log "stopping packaged cluster $ver/$name"
        pg_ctlcluster "$ver" "$name" stop -m fast >/dev/null 2>&1 || true
      else
        log "warning: packaged cluster $ver/$name is running (need root to stop it)" >&2
      fi
    fi
    # "manual" keeps postgresql.service / boot from starting it again.
    conf="/etc/postgresql/$ver/$name/start.conf"
    if [[ -w "$conf" ]] && grep -qx 'auto' "$conf"; then
      log "setting $ver/$name to manual start"
      sed -i 's/^auto$/manual/' "$conf"
    fi
  done < <(pg_lsclusters --no-header 2>/dev/null || true)
fi

for bin in /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/postgres /usr/sbin/pgbouncer /usr/bin/python3; do
  if [[ ! -x "$bin" ]]; then
    log "expected binary missing after install: $bin" >&2
    exit 1
  fi
done
log "ok"
