#!/usr/bin/env bash
# CI: make Debian's PostgreSQL server binaries available (initdb, pg_ctl under /usr/lib/postgresql/*/bin).
# Starts nothing and exports nothing: the store tests' fixture (tests/core/store/store_pg.py) runs its
# own throwaway cluster on a free local port in a temporary folder, as the 'postgres' user when run as root.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
    echo "postgres.sh: PostgreSQL server binaries already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "postgres.sh: initdb missing after install" >&2; exit 1; }
echo "postgres.sh: installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
