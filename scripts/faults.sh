#!/usr/bin/env bash
# Fault injection at full size (docs/faults.md): kill -9 in 10 rounds of 1,000
# messages, a full spool disk, a slow/dropping/throttling upstream, a 1 GiB DATA
# stream, a 10 MB line, 100,000 RCPTs, 1,000 idle sessions, 2,000 slowloris
# connections, 1,600 half-sent HTTP requests against SMTP and /healthz under ulimit -n 1024.
# Release build; needs root (the disk test mounts a tmpfs).
# The same tests run smaller in every ./scripts/test.sh (ctest: integration.test_fault_*).
#   ./scripts/faults.sh            # all of them
#   ./scripts/faults.sh crash      # only tests/integration/test_fault_crash.py
set -euo pipefail
source "$(dirname "$0")/full-scale.sh"
full_scale_setup fault
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # 2,000 slowloris connections need the room
if [ $# -gt 0 ]; then
  tests=()
  for t in "$@"; do tests+=("test_fault_$t"); done
else
  tests=(test_fault_crash test_fault_disk test_fault_upstream test_fault_bounds test_fault_starvation)
fi
/usr/bin/python3 -m unittest -v "${tests[@]}"
full_scale_report fault
