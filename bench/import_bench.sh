#!/usr/bin/env bash
# Suppression import at scale (issue 13): generates a CSV of ROWS rows
# (default 1,000,000) and imports it with `unsubrelay suppression import`
# into a fresh SQLite store and into a private PostgreSQL (scripts/test-postgres.sh),
# reporting wall time and peak RSS (GNU time) of each run, then imports the
# same file again (idempotent: 0 new). Release build. Root or the postgres account.
#   ./bench/import_bench.sh [ROWS]
#   UNSUBRELAY_BIN=build/debug/unsubrelay ./bench/import_bench.sh 2000   # a quick try
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
bin=${UNSUBRELAY_BIN:-}  # another binary (e.g. a debug build, to try the script with few rows)
if [ -z "$bin" ]; then
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
  ninja -C build/release unsubrelay >/dev/null
  bin="$(pwd)/build/release/unsubrelay"
fi
dir=$(mktemp -d /tmp/unsubrelay-import-bench-XXXXXX)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
python3 - "$rows" "$dir/optouts.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
reasons = ["unsubscribe", "complaint", "hard_bounce", "manual"]
with open(path, "w") as f:
    f.write("email,reason,created\n")
    for i in range(n):
        f.write(f"user{i}@example{i % 997}.com,{reasons[i % 4]},2025-0{1 + i % 9}-1{i % 10}T10:00:00Z\n")
PY
echo "input: $rows rows, $(du -h "$dir/optouts.csv" | cut -f1)"

run() {  # run LABEL CONFIG
  for pass in first again; do
    /usr/bin/time -f "$1 ($pass): %e s wall, %M KiB peak RSS" "$bin" suppression import -c "$2" "$dir/optouts.csv" \
      | sed "s|^|  |"
  done
}

cat >"$dir/sqlite.yaml" <<YAML
smtp: {listen: ["127.0.0.1:0"], hostname: bench.test}
upstream: {kind: directory, directory: $dir/outbox}
spool: {path: $dir/spool}
store: {kind: sqlite, path: $dir/store.db}
YAML
run sqlite "$dir/sqlite.yaml"

export BIN_PATH="$bin" DIR="$dir"
./scripts/test-postgres.sh bash -c '
  set -euo pipefail
  cat >"$DIR/pg.yaml" <<YAML
smtp: {listen: ["127.0.0.1:0"], hostname: bench.test}
upstream: {kind: directory, directory: $DIR/outbox}
spool: {path: $DIR/spool}
store: {kind: postgresql, url: "$UNSUBRELAY_TEST_PG_URL"}
YAML
  for pass in first again; do
    /usr/bin/time -f "postgresql ($pass): %e s wall, %M KiB peak RSS" "$BIN_PATH" suppression import \
      -c "$DIR/pg.yaml" "$DIR/optouts.csv" | sed "s|^|  |"
  done
'
