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
finds a backlog at start-up: submitting 100,000 messages over SMTP takes
longer than the relay takes to deliver them (docs/performance.md, "Slow
upstream"), so no backlog would form. The relay is configured with the
tenants a (clients from 127.0.0.1) and b (from 127.0.0.2); b's message is
submitted over SMTP from 127.0.0.2, its tenant chosen by the relay.
--same-tenant is the control: b's message comes from 127.0.0.1 as tenant a's
and waits in a's line, as every message waited behind a backlog before the
queue was split by tenant. --no-tenants (a relay without the tenant runtime):
no `tenants:` section, a's files name tenant a, b's message is "default".

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
from postfix_compare import BIN, campaign_file, free_port, start_relay  # noqa: E402

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


def submit_b(port, message, source, sender):
    """One message to B_RCPT; the monotonic time of the relay's 250."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=30) as s:
        s.sendmail(sender, [B_RCPT], message)
        return time.monotonic()


def tenants_config(work):
    """Tenants a (127.0.0.1, example.com) and b (127.0.0.2, b.example.net), each with its own token keys."""
    tenants = []
    for tenant, network, domain in (("a", "127.0.0.1/32", "example.com"), ("b", "127.0.0.2/32", "b.example.net")):
        keys = os.path.join(work, f"keys-{tenant}.yaml")
        subprocess.run([BIN, "keygen", "--id", f"{tenant}1", "-o", keys], check=True, stdout=subprocess.DEVNULL)
        tenants.append({"id": tenant, "networks": [network], "sender_domains": [domain], "keys_file": keys})
    return tenants


def one_run(args, with_b, content, message):
    work = tempfile.mkdtemp(prefix="fairness-", dir=args.work)
    sink, sink_port, stats, mark = start_sink(work, args.delay_ms)
    relay = None
    try:
        spool = os.path.join(work, "spool")
        # Without tenants: section, the control's a is "default", as b's message is.
        write_backlog(spool, content, args.copies, "" if args.no_tenants and args.same_tenant else "a")
        extra = {"upstream": {"max_connections": args.connections}, "spool": {"path": spool}}
        if not args.no_tenants:
            extra["tenants"] = tenants_config(work)
        port = free_port()
        relay, _ = start_relay(work, port, sink_port, extra)
        samples, sent_at, deadline = [], None, time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            s = read_stats(stats)
            if s and (not samples or s[1] != samples[-1][1]):
                samples.append(s)
            if with_b and sent_at is None and s and s[0] >= args.b_after:
                sent_at = submit_b(port, message, *args.b_from)
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
        if args.verbose:  # a's rate by tenth of its copies, from the sink's samples
            marks = [next((x for x in samples if x[0] >= k * args.copies // 10), None) for k in range(11)]
            print("  by tenth:", " ".join(f"{(m1[0] - m0[0]) / (m1[1] - m0[1]):.0f}" if m0 and m1 and m1[1] > m0[1]
                                          else "-" for m0, m1 in zip(marks, marks[1:])), flush=True)
        latency = None
        if with_b and args.verbose:  # a's rate in this run before b's 250 and after it, inside the window
            sent = next((x for x in samples if x[1] >= sent_at), None)
            if sent and first[1] < sent[1] < last[1]:
                print(f"  a before b: {(sent[0] - first[0]) / (sent[1] - first[1]):.0f} copies/s, after: "
                      f"{(last[0] - sent[0] - 1) / (last[1] - sent[1]):.0f}", flush=True)
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
    ap.add_argument("--same-tenant", action="store_true", help="the control: b's message is tenant a's")
    ap.add_argument("--no-tenants", action="store_true", help="no tenants: section (a relay before the tenant runtime)")
    ap.add_argument("--timeout", type=float, default=1800, help="per run")
    ap.add_argument("--work", default=None, help="where the spools go (default: $TMPDIR)")
    ap.add_argument("--b-first", action="store_true", help="each pair starts with the run with b")
    ap.add_argument("--verbose", action="store_true", help="a's rate by tenth of its copies, per run")
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
        if args.same_tenant or args.no_tenants:  # from 127.0.0.1: tenant a's network, sender and From:
            message, args.b_from = text, ("127.0.0.1", "news@example.com")
        else:
            message = text.replace("From: News <news@example.com>", "From: B <news@b.example.net>")
            args.b_from = ("127.0.0.2", "news@b.example.net")
        alone, shared, latencies = [], [], []
        for i in range(args.repeat):
            for with_b in ((True, False) if args.b_first else (False, True)):
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
