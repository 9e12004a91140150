#!/usr/bin/env bash
# Suppression import at scale (issue 13): for each ROWS (default 100000 and
# 1000000) generates a CSV of that many opt-outs and imports it with
# `unsubrelay suppression import`, first into a fresh SQLite store, then into
# PostgreSQL, twice each (the second run is the idempotent re-import: 0 new),
# reporting wall time, CPU time and peak RSS (GNU time) of every run, and the
# machine's load (`uptime`) before each.
#
# PostgreSQL is the private server of scripts/test-postgres.sh (a fresh
# database per size), or the server of UNSUBRELAY_BENCH_PG_URL (a store.url of
# an empty scratch database: the rows stay there; each size uses its own
# addresses). Release build. Root or the postgres account for the private server.
#   ./bench/import_bench.sh [ROWS...]
#   UNSUBRELAY_BENCH_PG_URL=postgresql://u@db.example/scratch ./bench/import_bench.sh 1000000
#   UNSUBRELAY_BENCH_SKIP_PG=1 ./bench/import_bench.sh           # SQLite only
#   UNSUBRELAY_BIN=build/debug/unsubrelay ./bench/import_bench.sh 2000   # a quick try of the script
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(100000 1000000); fi
bin=${UNSUBRELAY_BIN:-}  # another binary (e.g. a debug build, to try the script with few rows)
if [ -z "$bin" ]; then
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
  ninja -C build/release unsubrelay >/dev/null
  bin="$(pwd)/build/release/unsubrelay"
fi
dir=$(mktemp -d /tmp/unsubrelay-import-bench-XXXXXX)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT

for rows in "${sizes[@]}"; do
  python3 - "$rows" "$dir/optouts-$rows.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
reasons = ["unsubscribe", "complaint", "hard_bounce", "manual"]
with open(path, "w") as f:
    f.write("email,reason,created\n")
    for i in range(n):
        f.write(f"s{n}.user{i}@example{i % 997}.com,{reasons[i % 4]},2025-0{1 + i % 9}-1{i % 10}T10:00:00Z\n")
PY
  echo "input: $rows rows, $(du -h "$dir/optouts-$rows.csv" | cut -f1)"
done

# run_import LABEL CONFIG CSV: the first import and the re-import, one line each.
run_import() {
  for pass in first again; do
    echo "  load before: $(uptime | sed 's/.*load average: //')"
    /usr/bin/time -f "$1 ($pass): %e s wall, %U s user, %S s sys, %M KiB peak RSS" \
      "$bin" suppression import -c "$2" "$3" | sed "s|^|  |"
  done
}

config() {  # config FILE STORE_YAML
  cat >"$1" <<YAML
smtp: {listen: ["127.0.0.1:0"], hostname: bench.test}
upstream: {kind: directory, directory: $dir/outbox}
spool: {path: $dir/spool}
store: $2
YAML
}

for rows in "${sizes[@]}"; do
  config "$dir/sqlite-$rows.yaml" "{kind: sqlite, path: $dir/store-$rows.db}"
  run_import "sqlite $rows" "$dir/sqlite-$rows.yaml" "$dir/optouts-$rows.csv"
  rm -f "$dir/store-$rows.db"*
done
[ -n "${UNSUBRELAY_BENCH_SKIP_PG:-}" ] && exit 0

export -f run_import config
export BIN="$bin" DIR="$dir" SIZES="${sizes[*]}" bin dir
postgres() {  # runs with UNSUBRELAY_TEST_PG_URL set
  set -euo pipefail
  for rows in $SIZES; do
    url=$UNSUBRELAY_TEST_PG_URL
    if [ -z "${UNSUBRELAY_BENCH_PG_URL:-}" ]; then
      psql "$url" -q -c "CREATE DATABASE bench_$rows"
      url="${url%/*}/bench_$rows"
    fi
    config "$DIR/pg-$rows.yaml" "{kind: postgresql, url: \"$url\"}"
    run_import "postgresql $rows" "$DIR/pg-$rows.yaml" "$DIR/optouts-$rows.csv"
  done
}
export -f postgres
if [ -n "${UNSUBRELAY_BENCH_PG_URL:-}" ]; then
  UNSUBRELAY_TEST_PG_URL=$UNSUBRELAY_BENCH_PG_URL bash -c postgres
else
  ./scripts/test-postgres.sh bash -c postgres
fi
