#!/usr/bin/env python3
"""One-click and delivery latency while a contact is erased (issue 22, point 7),
on SQLite and on PostgreSQL, for docs/performance-erasure.md.

It runs the scenario of tests/integration/test_erasure_latency.py (a contact
with --rows events and a tenth as many bounces; another client holds a read
transaction open for --hold seconds during the erasure; one-clicks and
deliveries timed meanwhile) with the given binary, without its bound, and
prints each backend's figures. PostgreSQL needs the test server:

    ./scripts/test-postgres.sh python3 bench/erasure_latency.py --bin build/debug/unsubrelay
    ./scripts/test-postgres.sh python3 bench/erasure_latency.py --bin ../h5-base/build/debug/unsubrelay \\
        --rows 20000 --other-rows 1000000
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests", "integration")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the unsubrelay binary to measure")
    p.add_argument("--rows", type=int, default=20000, help="the erased contact's events")
    p.add_argument("--other-rows", type=int, default=0, help="other contacts' events (a big events table)")
    p.add_argument("--hold", type=float, default=5.0, help="seconds the other reader keeps its transaction")
    p.add_argument("--runs", type=int, default=1)
    a = p.parse_args()
    tests = ["test_erasure_latency.SqliteErasureLatencyTest"]
    if os.environ.get("UNSUBRELAY_TEST_PG_URL"):
        tests.append("test_erasure_latency.PostgresErasureLatencyTest")
    else:
        print("no UNSUBRELAY_TEST_PG_URL: SQLite only (run under scripts/test-postgres.sh for both)", file=sys.stderr)
    env = {**os.environ, "UNSUBRELAY_BIN": os.path.abspath(a.bin), "ERASURE_ROWS": str(a.rows),
           "ERASURE_OTHER_ROWS": str(a.other_rows), "ERASURE_HOLD": str(a.hold), "ERASURE_BOUND": "1e9"}
    for _ in range(a.runs):
        for test in tests:
            r = subprocess.run([sys.executable, "-m", "unittest", test], cwd=TESTS, env=env, capture_output=True,
                               text=True)
            lines = [line for line in r.stderr.splitlines() if line.startswith("[")]
            print("\n".join(lines) or r.stderr[-3000:])
            if r.returncode != 0:
                print(f"  ({test} failed: {r.stderr.strip().splitlines()[-1]})")


if __name__ == "__main__":
    main()
