#!/usr/bin/env bash
# Installs PostgreSQL from the OS packages when its server binaries are missing, so a
# fresh machine needs nothing but `make test` or `make demo`: the local cluster runs a
# PostgreSQL beside it and the tests start their own. Debian packages `postgresql`
# (the server, under /usr/lib/postgresql/<version>/bin) and `postgresql-client`.
# The package's own cluster (the `main` one on port 5432) is stopped and not used: our
# servers are started by agentry_cluster.postgres with their own data directories.
set -euo pipefail

have_server() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && command -v psql >/dev/null; }

if have_server; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "PostgreSQL is missing: install the OS packages postgresql and postgresql-client" >&2
  echo "(the postgres tests and the cluster's database are skipped without them)" >&2
  exit 0
fi
echo "installing the OS packages postgresql and postgresql-client" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
# Do not leave the package's default server running beside ours.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
    pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
  done
fi
have_server || { echo "PostgreSQL still missing after apt-get install" >&2; exit 1; }
