#!/usr/bin/env python3
"""Load-independent costs of relaying: system calls and instructions per message and per copy.

Wall-clock figures need a quiet machine; these counts do not. The relay (Release
build) relays smtp-source's messages to smtp-sink, as in bench/postfix_compare.py,
under one of:
  --tool strace     strace -c -f attached after start-up: system calls per message, by name
  --tool syncs      strace -y of fsync, fdatasync, rename and unlink: per message, by file
  --tool callgrind  valgrind --tool=callgrind, collecting only while the load runs:
                    instructions per copy, and the top functions (inclusive)
  --tool perf       perf record -g while the load runs: where the CPU goes (perf report);
                    PERF_CALLGRAPH replaces -g (the Release build has no frame pointers:
                    PERF_CALLGRAPH="--call-graph dwarf,16384 -F 499" unwinds its stacks)
  --tool none       the relay's own CPU time per copy (from /proc), threads and all
Each run first sends --warmup messages (default 200) and waits for them, then
measures --messages. Every recipient is a new address (smtp-source -N), as in
bench/postfix_compare.py; --known repeats each message's recipients instead, so
after the warm-up every contact is one the store already has (a campaign sent
again to its list).
Usage: python3 bench/relay_profile.py [--tool T] [--size KB] [--rcpts N] [--messages M] [--warmup W] [--sessions S]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_compare import BIN, Sink, campaign_file, free_port, proc_cpu  # noqa: E402


def start_relay(rdir, port, sink_port, sessions, tool, extra):
    config = {
        "smtp": {"listen": [f"127.0.0.1:{port}"], "hostname": "bench.localdomain", "max_connections": 2000,
                 "allow_networks": ["127.0.0.0/8"]},
        "upstream": {"kind": "smtp", "host": "127.0.0.1", "port": sink_port, "tls": "none",
                     "max_connections": sessions},
        "http": {"listen": [f"127.0.0.1:{free_port()}"]},
        "unsubscribe": {"base_url": "https://unsub.example.com"},
        "log": {"level": "warn"},
    }
    for key, value in extra.items():
        config.setdefault(key, {}).update(value)
    with open(os.path.join(rdir, "relay.yaml"), "w") as f:
        json.dump(config, f)
    cmd = [BIN, "run", "-c", "relay.yaml"]
    if tool == "callgrind":
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=callgrind.out"] + cmd
    relay = subprocess.Popen(cmd, cwd=rdir, stdout=open(os.path.join(rdir, "relay.log"), "w"),
                             stderr=subprocess.STDOUT)
    for _ in range(3000):  # valgrind takes minutes to start on a loaded machine
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return relay
        except OSError:
            time.sleep(0.1)
    relay.kill()
    relay.wait()
    raise RuntimeError("the relay did not start: see " + os.path.join(rdir, "relay.log"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", choices=("strace", "syncs", "callgrind", "perf", "none"), default="none")
    ap.add_argument("--size", type=int, default=10, help="message size in KB")
    ap.add_argument("--rcpts", type=int, default=10)
    ap.add_argument("--messages", type=int, default=200, help="measured messages")
    ap.add_argument("--warmup", type=int, default=200,
                    help="messages sent and delivered before measuring (connections open, caches warm)")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--config", default="{}", help="JSON merged into the relay's configuration")
    ap.add_argument("--known", action="store_true", help="the same recipients in every message (known contacts)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (perf.data, callgrind.out)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="unsubrelay-profile-")
    os.chmod(work, 0o755)
    message = campaign_file(work, args.size * 1024)
    sink = Sink(work)
    port = free_port()
    try:
        relay = start_relay(work, port, sink.port, args.sessions, args.tool, json.loads(args.config))
    except RuntimeError as e:
        sink.stop()
        sys.exit(str(e))
    copies = args.messages * args.rcpts
    helper = None
    try:
        warm = send_load(port, message, args, args.warmup, sink, args.warmup * args.rcpts)
        if warm.returncode or sink.messages() < args.warmup * args.rcpts:
            sys.exit(f"warm-up incomplete: the sink saw {sink.messages()} of {args.warmup * args.rcpts} copies; "
                     "smtp-source: " + warm.stderr.decode(errors="replace")[-500:])
        time.sleep(1)  # the warm-up's last bookkeeping (queue files, store records) stays out of the measurement
        if args.tool == "callgrind":
            subprocess.run(["callgrind_control", "-i", "on", str(relay.pid)], check=True, stdout=subprocess.DEVNULL)
        elif args.tool == "strace":
            helper = subprocess.Popen(["strace", "-c", "-f", "-o", os.path.join(work, "strace.txt"), "-p",
                                       str(relay.pid)], stderr=subprocess.DEVNULL)
            time.sleep(1)
        elif args.tool == "syncs":
            helper = subprocess.Popen(["strace", "-f", "-y", "-e", "trace=fsync,fdatasync,rename,renameat,unlink",
                                       "-o", os.path.join(work, "syncs.txt"), "-p", str(relay.pid)],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1)
        elif args.tool == "perf":
            helper = subprocess.Popen(["perf", "record", *os.environ.get("PERF_CALLGRAPH", "-g").split(), "-o", os.path.join(work, "perf.data"), "-p",
                                       str(relay.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        base = sink.messages()
        cpu0 = proc_cpu(relay.pid)
        threads0 = thread_cpu(relay.pid)
        switches0 = context_switches(relay.pid)
        start = time.monotonic()
        source = send_load(port, message, args, args.messages, sink, base + copies)
        elapsed = time.monotonic() - start
        cpu = proc_cpu(relay.pid) - cpu0
        threads = by_name(thread_cpu(relay.pid), threads0)
        switches = {k: v - switches0.get(k, 0) for k, v in context_switches(relay.pid).items()}
        if helper:
            helper.send_signal(signal.SIGINT)
            helper.wait(timeout=120)
        if args.tool == "callgrind":
            subprocess.run(["callgrind_control", "-i", "off", str(relay.pid)], stdout=subprocess.DEVNULL)
        delivered = sink.messages() - base
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=300)
        sink.stop()

    print(f"{args.size} KB x {args.rcpts} rcpt, {args.messages} messages after {args.warmup} of warm-up, "
          f"{copies} copies; sink saw {delivered}; "
          f"{elapsed:.1f} s; relay CPU {cpu * 1000 / copies:.3f} ms per copy ({args.tool})")
    if source.returncode:
        print("smtp-source:", source.stderr.decode(errors="replace")[-500:])
    if args.tool == "none":
        print(f"context switches per message: {sum(switches.values()) / args.messages:.1f} (" +
              ", ".join(f"{k} {v / args.messages:.1f}" for k, v in sorted(switches.items(), key=lambda x: -x[1])) + ")")
        print("relay CPU by thread (s):", ", ".join(f"{name} {s:.2f}" for name, s in threads))
    elif args.tool == "strace":
        report_strace(os.path.join(work, "strace.txt"), args.messages, copies)
    elif args.tool == "syncs":
        report_syncs(os.path.join(work, "syncs.txt"), args.messages)
    elif args.tool == "callgrind":
        report_callgrind(os.path.join(work, "callgrind.out"), copies)
    elif args.tool == "perf":
        print(f"perf report -i {os.path.join(work, 'perf.data')} --no-children --sort dso,symbol")
        args.keep = True
    if args.keep:
        print("work directory:", work)
    else:
        shutil.rmtree(work, ignore_errors=True)


def send_load(port, message, args, messages, sink, until):
    """smtp-source sends messages of args.rcpts recipients; returns its result once
    the sink has counted until copies in all (or after 30 minutes)."""
    if messages == 0:
        return subprocess.CompletedProcess([], 0, b"", b"")
    source = subprocess.run(["smtp-source", "-s", str(args.sessions), "-m", str(messages), "-r", str(args.rcpts),
                             *([] if args.known else ["-N"]), "-f", "news@example.com", "-t", "rcpt@example.org", "-F", message,
                             f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1800
    while sink.messages() < until and time.monotonic() < deadline:
        time.sleep(0.05)
    return source


def thread_cpu(pid):
    """{thread id: (name, CPU seconds)} for every thread of pid."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            fields = rest.split()
            out[tid] = (head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / tick)
        except OSError:
            pass
    return out


def context_switches(pid):
    """{thread name without its number: context switches so far} over every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                lines = f.read().splitlines()
            name = re.sub(r"-\d+$", "", lines[0].split()[1])
            out[name] = out.get(name, 0) + sum(int(x.split()[1]) for x in lines if "ctxt_switches" in x)
        except OSError:
            pass
    return out


def by_name(now, before):
    """CPU seconds each thread used since before, summed over threads of one name, busiest first.
    Compared per thread id: a thread that started or ended in between does not skew its name's figure."""
    totals = {}
    for tid, (name, secs) in now.items():
        totals[name] = totals.get(name, 0) + secs - before.get(tid, (name, 0))[1]
    return sorted(totals.items(), key=lambda x: -x[1])


def report_strace(path, messages, copies):
    calls = []
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                calls.append((int(m.group(1)), m.group(2)))
    total = sum(n for n, _ in calls)
    print(f"system calls: {total / messages:.1f} per message, {total / copies:.2f} per copy")
    for n, name in sorted(calls, reverse=True)[:15]:
        print(f"  {name:<16} {n / messages:8.2f} per message")
    # Issue 25's two figures: what makes a message durable, and the files made for it.
    count = dict((name, n) for n, name in calls)
    syncs = count.get("fsync", 0) + count.get("fdatasync", 0)
    print(f"durability: fsync + fdatasync {syncs / messages:.2f} per message; "
          f"rename {count.get('rename', 0) / messages:.2f} per message (a queue file made and moved into messages/)")


def report_syncs(path, messages):
    """fsync, fdatasync, rename and unlink per message, by the file they were called on
    (digits folded, so every segment or queue file counts as one name)."""
    counts = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\d+\s+(\w+)\((?:\d+<([^>]*)>|\"([^\"]*)\")", line)
            if not m:
                continue
            name = m.group(2) or m.group(3) or "?"
            head, base = os.path.split(name)
            name = os.path.join(os.path.basename(head), re.sub(r"[0-9A-Za-z]{8,}", "*", base))
            counts[(m.group(1), name)] = counts.get((m.group(1), name), 0) + 1
    print("durability by file (per message):")
    for (call, name), n in sorted(counts.items(), key=lambda x: -x[1]):
        print(f"  {call:<10} {n / messages:6.3f}  {name}")


def report_callgrind(path, copies):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path], capture_output=True, text=True).stdout
    total = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", out)
    if total:
        ir = int(total.group(1).replace(",", ""))
        print(f"instructions: {ir / copies:,.0f} per copy (Ir, inclusive of everything the relay ran)")
    shown = 0
    for line in out.splitlines():
        if shown < 40 and re.match(r"\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", line) and "PROGRAM TOTALS" not in line:
            print("  " + line.strip()[:160])
            shown += 1
    print(f"callgrind_annotate --inclusive=yes {path}   (kept with --keep)")


if __name__ == "__main__":
    main()
