#!/usr/bin/env bash
# Starts a private PostgreSQL server for the tests (Debian's postgresql
# package) on a free loopback port with its own data directory, runs the
# given command with UNSUBRELAY_TEST_PG_URL set, then stops the server and
# removes the directory, whatever the command did.
#   ./scripts/test-postgres.sh COMMAND [ARGS...]
set -euo pipefail
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d /tmp/unsubrelay-pg-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_pg() {
  # PostgreSQL refuses to run as root: use the postgres account the package made.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"

stop() {
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

as_pg "$pgbin/initdb" -D "$dir/data" -A trust -U unsubrelay >/dev/null
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "test PostgreSQL on 127.0.0.1:$port (data in $dir)"
export UNSUBRELAY_TEST_PG_URL="postgresql://unsubrelay@127.0.0.1:$port/postgres"
"$@"
