#!/usr/bin/env bash
# The fleet and its database at full size (docs/faults.md): two relays on a
# PostgreSQL primary with a synchronous streaming replica, three failovers
# under SMTP load and one-click unsubscribes; then the fleet through PgBouncer
# in transaction pooling mode. Release build; needs root (the servers run as
# the postgres account). The same tests run smaller in every ./scripts/test.sh
# (ctest: integration.test_failover).
#   ./scripts/failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
ninja -C build/release unsubrelay
report="$(pwd)/build/failover-report.txt"
: >"$report"
export FAULT_SCALE=full FAULT_REPORT="$report" UNSUBRELAY_BUILD=release
export UNSUBRELAY_BIN="$(pwd)/build/release/unsubrelay"
cd tests/integration
# PgBouncerTest uses the private server scripts/test-postgres.sh starts.
../../scripts/test-postgres.sh /usr/bin/python3 -m unittest -v test_failover
echo
echo "== failover report (also in $report) =="
cat "$report"
