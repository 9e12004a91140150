#!/usr/bin/env python3
"""Fair delivery between tenants (issue 24 point 9, SPEC Part 3 "Quotas and fairness"; docs/performance.md).

Tenant a has --copies single-recipient campaign messages queued (campaign
platforms submit one recipient per message, SPEC Part 1) behind bench/slow_sink.py,
which answers the end of DATA after --delay-ms (60). A Release relay
(upstream.max_connections --connections) delivers them. In the runs "with b",
once the sink has counted --b-after of a's copies, another tenant submits one
message over SMTP; reported:
  b's latency   from the relay's 250 to b's copy's end of DATA at the sink
                (goal: about one copy's time, 60 ms, per connection: seconds at
                most, never the minutes a's backlog takes);
  a's rate      a's copies/s at the sink between --window copies (a's rate
                with b against without b: goal, no more than 10% lower).
Runs alternate without b / with b (--repeat of each); medians are reported.

How a's backlog is queued: its queue files are written into the relay's spool
before the relay starts (the N record names tenant a), as `unsubrelay run`
finds a backlog at start-up. b submits over SMTP from --b-source; without a
`tenants:` section that message is the tenant "default" (a stand-in until the
tenant runtime selects tenants by network); with --tenants, the relay is
configured with tenants a (127.0.0.1/32) and b (--b-source) and b's message
is tenant b's. With --a-tenant "", a's backlog is the tenant "default" too:
b's message then waits in a's line (the control: how any message waited
behind a backlog before the queue was split by tenant).

  python3 bench/tenant_fairness.py                    # 100,000 copies, 3 runs of each
  python3 bench/tenant_fairness.py --smoke            # checks the script: NOT a figure
"""

import argparse
import os
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_compare import campaign_file, free_port, start_relay  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
B_RCPT = "probe-b@example.net"


def read_stats(path):
    """(recipients, sink's monotonic time) from slow_sink.py's stats file, or None."""
    try:
        with open(path) as f:
            m = re.search(r"recipients (\d+) at ([\d.]+)", f.read())
        return (int(m.group(1)), float(m.group(2))) if m else None
    except OSError:
        return None


def write_backlog(spool, content, copies, tenant):
    """copies queue files of one recipient each, as the relay writes them (queue_file.cpp)."""
    messages = os.path.join(spool, "messages")
    os.makedirs(messages, exist_ok=True)
    body = content.encode()
    trailer = b"END %020d\n" % len(body)
    now = int(time.time())
    for i in range(copies):
        named = f"N {tenant}\n" if tenant else ""  # no N record: the tenant "default"
        head = (f"UNSUBRELAY-QUEUE 1\nT {now}\nC 127.0.0.1\nH bench\n{named}S news@example.com\n"
                f"R a{i}@example.org\nM\n").encode()
        with open(os.path.join(messages, f"FA{i:014X}"), "wb") as f:
            f.write(head + body + trailer)


def start_sink(work, delay_ms):
    stats, mark = os.path.join(work, "sink.stats"), os.path.join(work, "sink.mark")
    for path in (stats, mark):
        if os.path.exists(path):
            os.remove(path)
    port = free_port()
    sink = subprocess.Popen([sys.executable, os.path.join(HERE, "slow_sink.py"), "--port", str(port),
                             "--delay-ms", str(delay_ms), "--stats", stats, "--mark", B_RCPT, "--mark-file", mark])
    for _ in range(200):  # it writes its stats file once it listens
        if read_stats(stats):
            return sink, port, stats, mark
        time.sleep(0.05)
    sink.kill()
    raise RuntimeError("slow_sink.py did not start")


def submit_b(port, message, source):
    """One message to B_RCPT; the monotonic time of the relay's 250."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=30) as s:
        s.sendmail("news@b.example.net", [B_RCPT], message)
        return time.monotonic()


def one_run(args, with_b, content, message):
    work = tempfile.mkdtemp(prefix="fairness-", dir=args.work)
    sink, sink_port, stats, mark = start_sink(work, args.delay_ms)
    relay = None
    try:
        spool = os.path.join(work, "spool")
        write_backlog(spool, content, args.copies, args.a_tenant)
        extra = {"upstream": {"max_connections": args.connections}, "spool": {"path": spool}}
        if args.tenants:
            extra["tenants"] = [{"id": "a", "networks": ["127.0.0.1/32"]},
                                {"id": "b", "networks": [f"{args.b_source}/32"]}]
        port = free_port()
        relay, _ = start_relay(work, port, sink_port, extra)
        samples, sent_at, deadline = [], None, time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            s = read_stats(stats)
            if s and (not samples or s[1] != samples[-1][1]):
                samples.append(s)
            if with_b and sent_at is None and s and s[0] >= args.b_after:
                sent_at = submit_b(port, message, args.b_source)
            if s and s[0] >= args.copies + (1 if with_b else 0):
                break
            time.sleep(0.02)
        if relay.poll() is not None:
            raise RuntimeError(f"the relay exited with status {relay.returncode}")
        lo, hi = (int(x * args.copies) for x in args.window)
        first = next((x for x in samples if x[0] >= lo), None)
        last = next((x for x in samples if x[0] >= hi), None)
        if not first or not last or last[1] <= first[1]:
            raise RuntimeError(f"incomplete run: {samples[-1] if samples else 'no sample'}")
        # b's one copy is inside the window of the runs with b: not a's.
        b_in_window = 1 if with_b else 0
        rate = (last[0] - first[0] - b_in_window) / (last[1] - first[1])
        latency = None
        if with_b:
            with open(mark) as f:
                latency = float(f.read().split()[0]) - sent_at
        return rate, latency
    finally:
        if relay:
            relay.send_signal(signal.SIGTERM)
            if relay.wait(timeout=120) != 0:
                print(f"warning: the relay exited with status {relay.returncode}", file=sys.stderr)
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=100000, help="tenant a's queued single-recipient messages")
    ap.add_argument("--size-kb", type=int, default=10)
    ap.add_argument("--delay-ms", type=float, default=60)
    ap.add_argument("--connections", type=int, default=200, help="upstream.max_connections")
    ap.add_argument("--repeat", type=int, default=3, help="runs without b and with b, alternating")
    ap.add_argument("--b-after", type=int, default=30000, help="b submits once the sink has this many of a's copies")
    ap.add_argument("--window", type=float, nargs=2, default=(0.1, 0.9),
                    help="a's rate is measured between these fractions of its copies")
    ap.add_argument("--b-source", default="127.0.0.1", help="b's client address (127.0.0.2 with --tenants)")
    ap.add_argument("--a-tenant", default="a",
                    help='the tenant of a\'s queue files; "" (default, as b without --tenants): one line, the control')
    ap.add_argument("--tenants", action="store_true", help="configure tenants a and b by network")
    ap.add_argument("--timeout", type=float, default=1800, help="per run")
    ap.add_argument("--work", default=None, help="where the spools go (default: $TMPDIR)")
    ap.add_argument("--smoke", action="store_true", help="2,000 copies, one run of each: NOT a figure")
    args = ap.parse_args()
    if args.smoke:
        args.copies, args.repeat, args.b_after = 2000, 1, 600
        print("SMOKE RUN: it checks the script; it is NOT a figure.", flush=True)
    work = tempfile.mkdtemp(prefix="unsubrelay-fairness-", dir=args.work)
    args.work = work
    try:
        eml = campaign_file(work, args.size_kb * 1024)
        with open(eml) as f:
            text = f.read()
        content = text.replace("\n", "\r\n")  # as the SMTP server spools it
        message = text.replace("From: News <news@example.com>", "From: B <news@b.example.net>")
        alone, shared, latencies = [], [], []
        for i in range(args.repeat):
            for with_b in (False, True):
                rate, latency = one_run(args, with_b, content, message)
                (shared if with_b else alone).append(rate)
                if latency is not None:
                    latencies.append(latency)
                print(f"run {i + 1} {'with b' if with_b else 'a alone'}: a {rate:.0f} copies/s"
                      + (f", b's latency {latency * 1000:.0f} ms" if latency is not None else ""), flush=True)
        limit = args.connections / (args.delay_ms / 1000) if args.delay_ms > 0 else float("inf")
        a0, a1 = statistics.median(alone), statistics.median(shared)
        print(f"tenant a: {args.copies} queued messages of 1 recipient, {args.size_kb} KB, upstream answering DATA "
              f"after {args.delay_ms:.0f} ms, max_connections {args.connections} (at most {limit:.0f} copies/s):")
        print(f"  a's rate, median of {args.repeat}: alone {a0:.0f} copies/s, with b {a1:.0f} copies/s "
              f"({(a1 - a0) / a0:+.1%}; goal: no worse than -10%)")
        print(f"  b's latency (250 to the sink), median of {len(latencies)}: {statistics.median(latencies) * 1000:.0f} ms"
              f" (runs: {', '.join(f'{x * 1000:.0f}' for x in latencies)} ms); a's backlog takes "
              f"{args.copies / a0:.0f} s")
        if args.smoke:
            print("SMOKE RUN: NOT A FIGURE.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
