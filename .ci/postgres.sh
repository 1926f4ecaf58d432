#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the search tests; prints its URL on stdout (all else on stderr).
#   .ci/postgres.sh          install (Debian's package, when root and it is missing), initdb, start, createdb; print the URL
#   .ci/postgres.sh stop     stop the server and delete its folder
# Idempotent: a server already running in the folder is reused. Trust authentication on 127.0.0.1 only: it holds
# nothing but test studies. Settings: CIFAR_PG_PORT (default 55432), CIFAR_PG_DIR (default /tmp/cifar-ci-postgres-PORT).
set -euo pipefail
port="${CIFAR_PG_PORT:-55432}"
dir="${CIFAR_PG_DIR:-${TMPDIR:-/tmp}/cifar-ci-postgres-$port}"
db=cifar_test
user=cifar
say() { echo "postgres.sh: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(bindir)" ] && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's postgresql package"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    say "PostgreSQL is not installed; install it (Debian: apt-get install postgresql) or run as root"
    exit 1
  fi
fi
bin="$(bindir)"
bin="${bin:-$(dirname "$(command -v initdb)")}"

# PostgreSQL refuses to run as root: as root, the server and its folder belong to the postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  if [ -f "$dir/data/PG_VERSION" ]; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true; fi
  rm -rf "$dir"
  exit 0
fi

if [ ! -f "$dir/data/PG_VERSION" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U "$user" --auth=trust --encoding=UTF8 --no-instructions >/dev/null
fi
if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  # -k: the socket in our own folder; -h/-p: TCP on loopback only
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -h 127.0.0.1 -p $port" start >/dev/null; then
    say "the server did not start (is port $port taken? set CIFAR_PG_PORT); its log:"
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
  fi
fi
if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
fi
echo "postgresql://$user@127.0.0.1:$port/$db"
