#!/usr/bin/env bash
# postgres-test.sh CMD [ARGS...] starts a throwaway PostgreSQL cluster on 127.0.0.1 at a free port,
# runs CMD with VIDGEN_TEST_POSTGRES set to its URL, and stops and deletes the cluster when CMD ends
# (or fails, or is interrupted). Without CMD it prints the URL and keeps the server until Ctrl-C.
# The server binaries come from the distribution's postgresql package, installed with apt-get only
# when initdb is missing. initdb refuses to run as root, so as root the cluster belongs to the
# postgres user (runuser, no sudo needed); anyone else owns their own.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"
find_pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

PGBIN=$(find_pgbin)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "postgres-test: PostgreSQL's server is not installed: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "postgres-test: installing postgresql with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  PGBIN=$(find_pgbin)
fi

D=$(mktemp -d)
chmod 755 "$D"
as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$D"
  as_owner() { runuser -u postgres -- "$@"; }
fi

waiter=
stop() {
  [ -n "$waiter" ] && kill "$waiter" 2>/dev/null
  as_owner "$PGBIN/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap stop EXIT
trap 'exit 130' INT TERM

as_owner "$PGBIN/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$D/initdb.log" 2>&1 ||
  { cat "$D/initdb.log" >&2; exit 1; }

# A free port: the server is started on one and, should another process take it first, on the
# next try's. max_connections leaves room for a parallel test run, each test on its own database.
started=
for _ in 1 2 3 4 5 6 7 8 9 10; do
  PORT=$(free_port)
  if as_owner "$PGBIN/pg_ctl" -D "$D/data" -l "$D/log" -w -t 30 \
    -o "-k $D -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "postgres-test: the server did not start:" >&2
  cat "$D/log" >&2
  exit 1
fi

export VIDGEN_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
echo "postgres-test: $VIDGEN_TEST_POSTGRES ($("$PGBIN/postgres" --version))" >&2
if [ $# -eq 0 ]; then
  echo "$VIDGEN_TEST_POSTGRES"
  sleep infinity &
  waiter=$!
  wait $waiter
else
  "$@"
fi
