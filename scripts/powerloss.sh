#!/usr/bin/env bash
# Power loss at full size (docs/faults.md): the relay's spool and SQLite store
# on powerfs (tests/integration/powerfs.py, a FUSE file system that keeps only
# what was fsynced, or with --model random a random part of the rest), 200 power
# cuts in each model under SMTP load and one-click unsubscribes;
# then the real ext4 loop-device tests (a full ext4; full storage under ext4,
# where the failure comes at fsync). Release build; needs root and /dev/fuse.
# The same tests run smaller in every ./scripts/test.sh (ctest:
# integration.test_powerloss, integration.test_fault_ext4).
#   ./scripts/powerloss.sh
set -euo pipefail
source "$(dirname "$0")/full-scale.sh"
full_scale_setup powerloss
/usr/bin/python3 -m unittest -v test_powerloss test_fault_ext4
full_scale_report power-loss
