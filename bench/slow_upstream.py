#!/usr/bin/env python3
"""A slow upstream used fully (issue 14, goal 5; docs/performance.md).

smtp-source -> unsubrelay (Release build, upstream.max_connections 200) ->
bench/slow_sink.py, which answers the end of DATA after --delay-ms (60: SES over
the internet takes 50-150 ms per message). With 200 connections each busy 60 ms
per copy, the most the upstream can take is 200 / 0.06 = 3,333 copies/s; the
goal is 80% of that, 2,666 copies/s, of 1-recipient 10 KB messages, RSS under 200 MB.
All on loopback. Reported: delivered copies/s over the measured messages (after
--warmup), the relay's peak RSS (VmHWM) and its CPU per copy.

  python3 bench/slow_upstream.py                     # 20,000 messages after 1,000 warm-up
  python3 bench/slow_upstream.py --delay-ms 0        # the same with a sink that answers at once
  python3 bench/slow_upstream.py --smoke             # checks the script: NOT a figure
  python3 bench/slow_upstream.py --relay-config '{"spool": {"format": "files"}}'   # the spool of before issue 25
  python3 bench/slow_upstream.py --direct            # no relay: smtp-source to the sink over --connections sessions

--direct measures what this machine's load path can do without the relay: the
same sink and delay, smtp-source opening as many sessions as the relay has
upstream connections. Every run also reports the CPU smtp-source and the sink
spend per copy: on a small machine they share the cores with the relay, and
the direct run shows the ceiling they leave.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_compare import campaign_file, free_port, proc_cpu, start_relay  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def sink_count(stats):
    try:
        with open(stats) as f:
            return int(re.search(r"recipients (\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return 0


def send(port, message, messages, rcpts, sessions):
    return subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-r", str(rcpts), "-N",
                             "-f", "news@example.com", "-t", "rcpt@example.org", "-F", message,
                             f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_count(stats, expected, timeout):
    deadline = time.monotonic() + timeout
    while sink_count(stats) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return sink_count(stats) >= expected


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--size-kb", type=int, default=10)
    ap.add_argument("--delay-ms", type=float, default=60)
    ap.add_argument("--connections", type=int, default=200, help="upstream.max_connections")
    ap.add_argument("--sessions", type=int, default=50, help="smtp-source sessions feeding the relay")
    ap.add_argument("--relay-config", default=None,
                    help='JSON merged into the relay configuration, e.g. \'{"spool": {"format": "files"}}\'')
    ap.add_argument("--smoke", action="store_true", help="200 messages, 50 warm-up: NOT a figure")
    ap.add_argument("--direct", action="store_true", help="no relay: smtp-source straight to the sink")
    args = ap.parse_args()
    if args.smoke:
        args.messages, args.warmup = 200, 50
        print("SMOKE RUN: it checks the script; it is NOT a figure.", flush=True)

    work = tempfile.mkdtemp(prefix="unsubrelay-slow-")
    stats = os.path.join(work, "sink.stats")
    sink_port, port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, os.path.join(HERE, "slow_sink.py"), "--port", str(sink_port),
                             "--delay-ms", str(args.delay_ms), "--stats", stats])
    relay = None
    try:
        for _ in range(100):  # the sink writes its stats file once it listens
            if os.path.exists(stats):
                break
            time.sleep(0.05)
        sessions = args.sessions
        if args.direct:
            port, sessions = sink_port, args.connections
        else:
            extra = json.loads(args.relay_config) if args.relay_config else {}
            extra.setdefault("upstream", {})["max_connections"] = args.connections
            relay, _ = start_relay(work, port, sink_port, extra)
        message = campaign_file(work, args.size_kb * 1024)
        send(port, message, args.warmup, args.rcpts, sessions).wait()
        if not wait_count(stats, args.warmup * args.rcpts, 300):
            sys.exit("warm-up did not complete")
        base = sink_count(stats)
        expected = base + args.messages * args.rcpts
        cpu0 = proc_cpu(relay.pid) if relay else 0
        load0 = proc_cpu(sink.pid) + proc_cpu(os.getpid(), children=True)
        start = time.monotonic()
        source = send(port, message, args.messages, args.rcpts, sessions)
        complete = wait_count(stats, expected, 1800)
        elapsed = time.monotonic() - start
        cpu = proc_cpu(relay.pid) - cpu0 if relay else 0
        source.wait(timeout=60)  # reaped: its CPU is in this process's children's
        load = proc_cpu(sink.pid) + proc_cpu(os.getpid(), children=True) - load0
        hwm = 0
        if relay:
            with open(f"/proc/{relay.pid}/status") as f:
                hwm = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024
        copies = sink_count(stats) - base
        print(f"{args.size_kb} KB x {args.rcpts} rcpt, {args.messages} messages after {args.warmup} warm-up, "
              f"upstream answering DATA after {args.delay_ms:.0f} ms, max_connections {args.connections}"
              f"{', DIRECT (no relay)' if args.direct else ''}:")
        if args.delay_ms > 0:
            limit = args.connections / (args.delay_ms / 1000)
            share = f"{copies / elapsed / limit:.0%} of the upstream's {limit:.0f}/s; goal 80% of it, 2,666"
        else:
            share = "no upstream delay: this load path's limit, relay, sink and smtp-source on one machine"
        print(f"  {copies} copies in {elapsed:.1f} s: {copies / elapsed:.0f} copies/s ({share})"
              f"{'' if complete else ' INCOMPLETE'}")
        if relay:
            print(f"  relay CPU {cpu * 1000 / max(copies, 1):.3f} ms per copy, peak RSS {hwm:.0f} MB (goal < 200 MB)")
        print(f"  smtp-source and sink CPU {load * 1000 / max(copies, 1):.3f} ms per copy")
        if args.smoke:
            print("SMOKE RUN: NOT A FIGURE.")
    finally:
        if relay:
            relay.send_signal(signal.SIGTERM)
            relay.wait(timeout=60)
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
