#!/usr/bin/env bash
# The fleet and its database at full size (docs/faults.md): two relays on a
# PostgreSQL primary with a synchronous streaming replica, three failovers
# under SMTP load and one-click unsubscribes; then the fleet through PgBouncer
# in transaction pooling mode. Release build; needs root (the servers run as
# the postgres account). The same tests run smaller in every ./scripts/test.sh
# (ctest: integration.test_failover).
#   ./scripts/failover.sh
set -euo pipefail
source "$(dirname "$0")/full-scale.sh"
full_scale_setup failover
# PgBouncerTest uses the private server scripts/test-postgres.sh starts.
../../scripts/test-postgres.sh /usr/bin/python3 -m unittest -v test_failover
full_scale_report failover
