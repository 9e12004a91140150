#!/usr/bin/env python3
"""Memory and drain rate with a backlog (issue 14, goal 6; docs/performance.md).

1. fresh: a relay (Release build) with smtp-sink up relays --warmup messages,
   then --messages messages of --rcpts recipients: copies/s of a fresh load
   after its warm-up (the peer of step 3).
2. backlog: a second relay whose upstream port has nothing listening accepts
   the same load; every message is deferred (state/ID appears for each). Its
   RSS (VmRSS) is read with the whole backlog queued.
3. drain: smtp-sink starts on that port, `unsubrelay queue flush` asks for a
   retry of everything now; the backlog's copies/s to the sink, and the relay's
   peak RSS (VmHWM) over the whole run.
Goal: RSS under 100 MB with 100,000 queued recipients, and the backlog
draining at the rate of a fresh load.

  python3 bench/backlog_bench.py                 # 10,000 messages x 10 recipients (100,000 queued)
  python3 bench/backlog_bench.py --smoke         # checks the script: NOT a figure
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_compare import BIN, Sink, campaign_file, free_port, send, start_relay  # noqa: E402


def status_mb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1)) / 1024


def stop(relay):
    relay.send_signal(signal.SIGTERM)
    relay.wait(timeout=120)


def fresh(work, message, args):
    sink = Sink(work)
    port = free_port()
    relay, _ = start_relay(work, port, sink.port)
    try:
        # Warm-up: the relay's connections open and its store warm before the clock starts.
        if args.warmup > 0:
            send(port, message, args.warmup, args.rcpts).wait()
        deadline = time.monotonic() + 600
        while sink.messages() < args.warmup * args.rcpts and time.monotonic() < deadline:
            time.sleep(0.05)
        base = sink.messages()
        start = time.monotonic()
        send(port, message, args.messages, args.rcpts).wait()
        expected = base + args.messages * args.rcpts
        deadline = start + 1800
        while sink.messages() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        return (sink.messages() - base) / elapsed, status_mb(relay.pid, "VmHWM")
    finally:
        stop(relay)
        sink.stop()


def backlog(work, message, args):
    sink_port, port = free_port(), free_port()  # nothing listens on sink_port yet
    relay, rdir = start_relay(work, port, sink_port)
    sink = None
    try:
        state = os.path.join(rdir, "var", "spool", "state")
        start = time.monotonic()
        send(port, message, args.messages, args.rcpts).wait()
        accept_s = time.monotonic() - start
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if os.path.isdir(state) and len(os.listdir(state)) >= args.messages:
                break
            time.sleep(0.2)
        deferred = len(os.listdir(state)) if os.path.isdir(state) else 0
        time.sleep(2)  # let the last attempts' memory go
        rss_queued = status_mb(relay.pid, "VmRSS")

        sink = Sink(work, port=sink_port)
        start = time.monotonic()
        subprocess.run([BIN, "queue", "flush", "-c", "relay.yaml"], cwd=rdir, check=True)
        expected = args.messages * args.rcpts
        deadline = start + 1800
        while sink.messages() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        return {"accept_s": accept_s, "deferred": deferred, "rss_queued": rss_queued,
                "drain_rate": sink.messages() / elapsed, "drained": sink.messages(),
                "peak_rss": status_mb(relay.pid, "VmHWM")}
    finally:
        stop(relay)
        if sink:
            sink.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--rcpts", type=int, default=10)
    ap.add_argument("--size-kb", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=500, help="messages the fresh load sends before the clock starts")
    ap.add_argument("--smoke", action="store_true", help="200 messages: NOT a figure")
    args = ap.parse_args()
    if args.smoke:
        args.messages, args.warmup = 200, 20
        print("SMOKE RUN: it checks the script; it is NOT a figure.", flush=True)
    work = tempfile.mkdtemp(prefix="unsubrelay-backlog-")
    try:
        message = campaign_file(work, args.size_kb * 1024)
        rate, fresh_hwm = fresh(work, message, args)
        b = backlog(work, message, args)
        n = args.messages * args.rcpts
        print(f"{args.messages} messages x {args.rcpts} recipients ({n} copies) of {args.size_kb} KB:")
        print(f"  fresh load: {rate:.0f} copies/s, peak RSS {fresh_hwm:.0f} MB")
        print(f"  backlog: accepted in {b['accept_s']:.1f} s, {b['deferred']} messages deferred, "
              f"RSS with the backlog queued {b['rss_queued']:.0f} MB")
        print(f"  drain after queue flush: {b['drained']} copies, {b['drain_rate']:.0f} copies/s "
              f"({b['drain_rate'] / rate:.2f} x the fresh load); peak RSS over the run {b['peak_rss']:.0f} MB "
              f"(goal < 100 MB)")
        if args.smoke:
            print("SMOKE RUN: NOT A FIGURE.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
