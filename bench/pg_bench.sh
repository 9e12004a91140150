#!/usr/bin/env bash
# The PostgreSQL store's statements directly and through PgBouncer 1.18 in
# transaction pooling mode (docs/operations.md). Starts a private PostgreSQL
# (scripts/test-postgres.sh) and a PgBouncer in front of it (2 server
# connections, round robin, as under a fleet's load), runs bench/pg_bench on
# both URLs, stops both. Release build; root or the postgres account.
#   ./bench/pg_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
ninja -C build/release pg_bench >/dev/null
export BENCH="$(pwd)/build/release/bench/pg_bench"
exec ./scripts/test-postgres.sh bash -c '
  set -euo pipefail
  port=${UNSUBRELAY_TEST_PG_URL##*:}; port=${port%%/*}
  dir=$(mktemp -d /tmp/unsubrelay-pgbouncer-XXXXXX); chmod 755 "$dir"
  bport=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
  printf "\"unsubrelay\" \"\"\n" >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 2
min_pool_size = 2
server_round_robin = 1
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  chown -R postgres "$dir" 2>/dev/null || true
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- pgbouncer -d "$dir/pgbouncer.ini"; else pgbouncer -d "$dir/pgbouncer.ini"; fi
  trap "kill \$(cat $dir/pgbouncer.pid) 2>/dev/null; rm -rf $dir" EXIT
  sleep 1
  "$BENCH" "$UNSUBRELAY_TEST_PG_URL" "postgresql://unsubrelay@127.0.0.1:$bport/postgres"
'
