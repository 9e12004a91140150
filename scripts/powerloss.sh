#!/usr/bin/env bash
# Power loss at full size (docs/faults.md): the relay's spool and SQLite store
# on powerfs (tests/integration/powerfs.py, a FUSE file system that keeps only
# what was fsynced), 200 power cuts under SMTP load and one-click unsubscribes;
# then the real ext4 loop-device tests (a full ext4; full storage under ext4,
# where the failure comes at fsync). Release build; needs root and /dev/fuse.
# The same tests run smaller in every ./scripts/test.sh (ctest:
# integration.test_powerloss, integration.test_fault_ext4).
#   ./scripts/powerloss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
ninja -C build/release unsubrelay
report="$(pwd)/build/powerloss-report.txt"
: >"$report"
export FAULT_SCALE=full FAULT_REPORT="$report" UNSUBRELAY_BUILD=release
export UNSUBRELAY_BIN="$(pwd)/build/release/unsubrelay"
cd tests/integration
/usr/bin/python3 -m unittest -v test_powerloss test_fault_ext4
echo
echo "== power-loss report (also in $report) =="
cat "$report"
