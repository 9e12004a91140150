#!/usr/bin/env python3
"""unsubrelay against Postfix, in one run on one machine (bench/postfix_compare.sh runs it).

Postfix's smtp-source drives three targets, each relaying to smtp-sink:
  direct      smtp-source -> smtp-sink (the limit of the load path)
  postfix     smtp-source -> a private Postfix instance -> smtp-sink (the peer)
  unsubrelay  smtp-source -> unsubrelay (per-recipient rewriting, fsynced spool) -> smtp-sink
The same realistic multipart campaign message (with placeholders) is sent to
all three. Delivered recipients are counted at the sink: the run ends when the
sink has seen every expected transaction. Each run starts a fresh instance,
sends --warmup messages and waits for them (Postfix's processes started, the
relay's connections open), then measures --messages messages. Reported per
cell, the median of --repeat interleaved runs: messages/s, recipients/s, CPU
ms per delivered recipient (the whole machine, and the target's own: the
relay's process, or Postfix's processes with what master reaped), peak RSS
(PSS; Postfix summed over its processes).

  python3 bench/postfix_compare.py --cells 10:1,100:10 --messages 2000
  python3 bench/postfix_compare.py --smoke          # checks the script: NOT a figure

Two more targets measure the events of issue 26 (docs/events.md) against plain
unsubrelay in the same run: unsubrelay+events (a loopback webhook receiver that
answers at once, every event type on, batch_size 100) and unsubrelay+slow (the
same receiver answering each POST after 200 ms). For them the table adds the
receiver's lag: how long after the sink had the last copy the receiver had its
event (the relay never waits for it; only the lag grows).

  python3 bench/postfix_compare.py --cells 10:10 --targets unsubrelay,unsubrelay+events,unsubrelay+slow

Issue 25 (docs/spool.md) adds targets for the spool and for a second binary:
  unsubrelay+files / unsubrelay+segments  the relay with spool.format forced to files or segments
  unsubrelay@old    the binary named by UNSUBRELAY_OLD_BIN (say, a build of an earlier main),
                    so old and new are measured in the same run
  postfix+copies    Postfix fed personalised copies: the sender renders the campaign per
                    recipient and submits N one-recipient messages (what a user who needs a
                    per-recipient link does without this relay); its vs-Postfix ratio is
                    against plain Postfix in the same cell

  UNSUBRELAY_OLD_BIN=/tmp/old/unsubrelay python3 bench/postfix_compare.py --cells 10:1,100:1 \
      --targets postfix,postfix+copies,unsubrelay@old,unsubrelay
"""

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.abspath(os.environ.get("UNSUBRELAY_BIN", os.path.join(REPO, "build", "release", "unsubrelay")))
OLD_BIN = os.environ.get("UNSUBRELAY_OLD_BIN")
SPOOL_FORMATS = {"unsubrelay+files": "files", "unsubrelay+segments": "segments"}
SESSIONS = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def campaign_file(directory, size):
    """A multipart/alternative QP campaign with placeholders, padded to about size bytes."""
    para = ("<p>Weekly offers: caf=C3=A9 cr=C3=A8me, 20% off everything in the store this week only, see the =\r\n"
            "catalogue for details and conditions.</p>\r\n")
    html = para * max(1, (size * 2 // 3) // len(para))
    text = ("Weekly offers: caf=C3=A9 cr=C3=A8me, 20% off everything this week only.\r\n" *
            max(1, (size // 3) // 72))
    msg = ("From: News <news@example.com>\r\nTo: list@example.org\r\nSubject: Weekly offers\r\n"
           "X-Campaign-Id: 222222222\r\nX-Launch-List-Id: 111111111\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           + text + "Unsubscribe: *|UNSUBSCRIBE|*\r\n"
           "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           + html + "<a href=3D\"*|UNSUBSCRIBE|*\">Unsubscribe</a> uid=3D$uid$\r\n--b--\r\n")
    path = os.path.join(directory, f"campaign-{size}.eml")
    with open(path, "w", newline="") as f:
        f.write(msg.replace("\r\n", "\n"))  # smtp-source -F sends each line with CRLF itself
    return path


def busy_jiffies():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def proc_cpu(pid, children=False):
    """utime + stime in seconds (and the reaped children's cutime + cstime when children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kb(pids):
    """Proportional set size summed over processes (shared pages counted once overall)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


POSTFIX_UID = None


def postfix_pids(directory):
    """The private instance's master (from its pid file) and every process of user postfix."""
    global POSTFIX_UID
    if POSTFIX_UID is None:
        import pwd
        POSTFIX_UID = pwd.getpwnam("postfix").pw_uid
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid == POSTFIX_UID:
                pids.append(int(name))
        except OSError:
            pass
    master = postfix_master(directory)
    if master and master not in pids:
        pids.append(master)
    return pids


def postfix_master(directory):
    try:
        with open(os.path.join(directory, "queue", "pid", "master.pid")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postfix_cpu(directory):
    """Postfix's CPU so far: its live processes, plus the children master has reaped."""
    master = postfix_master(directory)
    total = 0.0
    for pid in postfix_pids(directory):
        try:
            total += proc_cpu(pid, children=(pid == master))
        except OSError:
            pass  # exited between the listing and the read: its time goes to master's children
    return total


class Sink:
    def __init__(self, work, port=None):
        self.port = port or free_port()
        self.out = open(os.path.join(work, f"sink-{self.port}.out"), "w+")
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{self.port}", "1024"],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        time.sleep(0.3)

    def messages(self):
        self.out.flush()
        with open(self.out.name) as f:
            data = f.read()
        found = re.findall(r"mesg=(\d+)", data)
        return int(found[-1]) if found else 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        self.out.close()


class EventReceiver:
    """A loopback webhook receiver (docs/events.md) keeping the highest event id posted to it,
    answering each POST with 204 after delay seconds, and when it last grew (for the lag). Every
    event of this benchmark is a copy's `delivered`, ids 1, 2, ...: id N is the Nth copy's."""

    def __init__(self, work, delay):
        self.max_id, self.last, self.delay = 0, 0.0, delay
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if owner.delay:
                    time.sleep(owner.delay)
                owner.max_id = max([owner.max_id] + [e["id"] for e in (body if isinstance(body, list) else [body])])
                owner.last = time.monotonic()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.secret = os.path.join(work, f"hook-secret-{self.server.server_port}")
        with open(self.secret, "w") as f:
            f.write("bench-secret\n")

    def relay_config(self):
        names = ["delivered", "deferred", "bounced", "blocked", "complaint", "suppressed", "unsubscribe",
                 "resubscribe", "erase"]
        return {"webhooks": [{"url": f"http://127.0.0.1:{self.server.server_port}/events", "secret_file": self.secret,
                              "events": names, "batch_size": 100, "batch_ms": 200}]}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def start_relay(work, port, sink_port, extra=None, cpus=None, binary=BIN):
    """The Release relay: upstream kind smtp to the sink, SESSIONS connections, fsynced spool."""
    rdir = tempfile.mkdtemp(prefix="relaybench-", dir=work)
    config = {
        "smtp": {"listen": [f"127.0.0.1:{port}"], "hostname": "bench.localdomain",
                 "max_connections": 2000, "allow_networks": ["127.0.0.0/8"]},
        "upstream": {"kind": "smtp", "host": "127.0.0.1", "port": sink_port, "tls": "none",
                     "max_connections": SESSIONS},
        "http": {"listen": [f"127.0.0.1:{free_port()}"]},
        "unsubscribe": {"base_url": "https://unsub.example.com"},
        "log": {"level": "warn"},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:  # a list (tenants)
            config[key] = value
    with open(os.path.join(rdir, "relay.yaml"), "w") as f:
        json.dump(config, f)
    cmd = [binary, "run", "-c", "relay.yaml"]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    relay = subprocess.Popen(cmd, cwd=rdir, stdout=open(os.path.join(rdir, "relay.log"), "w"),
                             stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return relay, rdir
        except OSError:
            time.sleep(0.05)
    relay.kill()
    relay.wait()
    raise RuntimeError("the relay did not start: see " + os.path.join(rdir, "relay.log"))


def send(dest, message, messages, rcpts):
    """smtp-source: SESSIONS sessions, messages messages of rcpts distinct recipients each."""
    return subprocess.Popen(["smtp-source", "-s", str(SESSIONS), "-m", str(messages), "-r", str(rcpts), "-N",
                             "-f", "news@example.com", "-t", "rcpt@example.org", "-F", message,
                             f"127.0.0.1:{dest}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(sink, expected, deadline, sample=None):
    while sink.messages() < expected and time.monotonic() < deadline:
        if sample:
            sample()
        time.sleep(0.05)
    return sink.messages() >= expected


def run_target(target, work, message, messages, rcpts, warmup, options):
    """One measured run of one target, after warmup messages through the same fresh instance."""
    sink = Sink(work)
    port = free_port()
    relay = None
    pf_dir = None
    receiver = None
    campaigns = messages
    try:
        if target == "direct":
            dest = sink.port
            per_message = 1
        elif target in ("postfix", "postfix+copies"):
            pf_dir = tempfile.mkdtemp(prefix="pfbench-", dir=work)
            os.chmod(pf_dir, 0o755)  # Postfix's daemons run as user postfix and must reach their queue
            with open("/etc/postfix/main.cf", "w") as f:
                f.write(f"# written by unsubrelay bench/postfix_compare.py; removed after the run\n"
                        f"compatibility_level = 3.6\nalternate_config_directories = {pf_dir}/etc\n")
            # No pipes: the master daemon would hold them open forever. (Postfix reports
            # start-up errors only to a terminal: run the script by hand under script(1) to see them.)
            subprocess.run([f"{REPO}/bench/postfix_instance.sh", "start", pf_dir, str(port), str(sink.port)],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            time.sleep(1)
            dest = port
            # All recipients share a domain: one transaction per default_destination_recipient_limit (50).
            limit = int(subprocess.run(["postconf", "-c", f"{pf_dir}/etc", "-h", "default_destination_recipient_limit"],
                                       capture_output=True, text=True, check=True).stdout)
            per_message = -(-rcpts // limit)
            if target == "postfix+copies":  # rcpts one-recipient copies per campaign message
                # At 100 recipients, 200,000 copies through Postfix would take most of an hour per
                # run: the copies are capped (--copies-max); rates per second stay comparable.
                copies = min(messages * rcpts, options.get("copies_max", 20000))
                campaigns = copies / rcpts  # messages/s stays campaign messages, as for the others
                messages, warmup, rcpts, per_message = copies, min(warmup * rcpts, 2000), 1, 1
        else:
            extra = json.loads(json.dumps(options.get("relay_config") or {}))  # a deep copy
            if target in ("unsubrelay+events", "unsubrelay+slow"):
                receiver = EventReceiver(work, 0.2 if target == "unsubrelay+slow" else 0.0)
                extra.update(receiver.relay_config())
            if target in SPOOL_FORMATS:
                extra.setdefault("spool", {})["format"] = SPOOL_FORMATS[target]
            binary = BIN
            if target == "unsubrelay@old":
                if not OLD_BIN:
                    raise RuntimeError("unsubrelay@old needs UNSUBRELAY_OLD_BIN")
                binary = os.path.abspath(OLD_BIN)
            relay, _ = start_relay(work, port, sink.port, extra, options.get("relay_cpus"), binary)
            dest = port
            per_message = rcpts  # one copy per recipient, each with its own link

        deadline = time.monotonic() + options.get("timeout", 1800)
        if warmup:
            send(dest, message, warmup, rcpts).wait()
            if not wait_for(sink, warmup * per_message, deadline):
                raise RuntimeError(f"{target}: warm-up did not complete")
        base = sink.messages()
        expected = base + messages * per_message

        def own_cpu():
            if relay:
                return proc_cpu(relay.pid)
            return postfix_cpu(pf_dir) if pf_dir else 0.0

        peak = [0]

        def sample_rss():
            now = time.monotonic()
            if now - sample_rss.last >= 0.2:
                sample_rss.last = now
                if pf_dir:
                    peak[0] = max(peak[0], rss_kb(postfix_pids(pf_dir)))
                elif relay:
                    peak[0] = max(peak[0], rss_kb([relay.pid]))
        sample_rss.last = 0.0

        jiffies0 = busy_jiffies()
        cpu0 = own_cpu()
        start = time.monotonic()
        source = send(dest, message, messages, rcpts)
        complete = wait_for(sink, expected, deadline, sample_rss)
        elapsed = time.monotonic() - start
        cpu_own = own_cpu() - cpu0
        cpu_all = (busy_jiffies() - jiffies0) / os.sysconf("SC_CLK_TCK")
        source.wait(timeout=60)
        if relay:
            with open(f"/proc/{relay.pid}/status") as f:
                peak[0] = max(peak[0], int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)))
        n = messages * rcpts
        lag = None
        if receiver:  # every copy's delivered event (warm-up included), once the sink has all copies
            done = start + elapsed
            give_up = time.monotonic() + options.get("timeout", 1800)
            while receiver.max_id < (warmup + messages) * rcpts and time.monotonic() < give_up:
                time.sleep(0.05)
            lag = max(0.0, receiver.last - done) if receiver.max_id >= (warmup + messages) * rcpts else None
        return {"target": target, "receiver_lag_s": lag, "seconds": elapsed, "complete": complete,
                "messages_per_s": campaigns / elapsed, "recipients_per_s": n / elapsed,
                "cpu_ms_per_rcpt": cpu_all * 1000 / n,
                "own_cpu_ms_per_rcpt": cpu_own * 1000 / n if target != "direct" else None,
                "peak_rss_mb": peak[0] / 1024 if peak[0] else None}
    finally:
        if relay:
            relay.send_signal(signal.SIGTERM)
            relay.wait(timeout=60)
        if pf_dir:
            subprocess.run([f"{REPO}/bench/postfix_instance.sh", "stop", pf_dir], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            os.remove("/etc/postfix/main.cf")
        sink.stop()
        if receiver:
            receiver.stop()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="10:1,10:10,10:100,100:1,100:10,100:100",
                    help="KB:recipients pairs, comma-separated (default: all six cells)")
    ap.add_argument("--messages", type=int, default=2000, help="measured messages per run (default 2000)")
    ap.add_argument("--warmup", type=int, default=200, help="messages sent and delivered before each run")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs per cell; the median is reported")
    ap.add_argument("--targets", default="direct,postfix,unsubrelay")
    ap.add_argument("--relay-config", default=None, help="JSON merged into the relay's configuration sections")
    ap.add_argument("--relay-cpus", default=None, help="run the relay under taskset -c CPUS")
    ap.add_argument("--copies-max", type=int, default=20000,
                    help="postfix+copies: at most this many one-recipient copies measured per run")
    ap.add_argument("--smoke", action="store_true", help="20 messages, 1 run, no warm-up: checks the script, NOT a figure")
    ap.add_argument("--quick", action="store_true", help="same as --smoke")
    args = ap.parse_args()
    if args.smoke or args.quick:
        args.smoke, args.messages, args.warmup, args.repeat = True, 20, 0, 1
    return args


def print_table(rows, repeat):
    print(f"\n| message | rcpt/msg | target | msgs/s | rcpts/s | CPU ms / rcpt (machine) | CPU ms / rcpt (own) "
          f"| peak RSS MB | vs Postfix | vs Postfix fed copies | vs direct | rcpts/s range of {repeat} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size_kb, rcpts, results, spread in rows:
        for t, r in results.items():
            vs_pf = f"{r['recipients_per_s'] / results['postfix']['recipients_per_s']:.2f}" if "postfix" in results else "-"
            vs_copies = (f"{r['recipients_per_s'] / results['postfix+copies']['recipients_per_s']:.2f}"
                         if "postfix+copies" in results else "-")
            vs_direct = f"{r['recipients_per_s'] / results['direct']['recipients_per_s']:.2f}" if "direct" in results else "-"
            own = f"{r['own_cpu_ms_per_rcpt']:.3f}" if r["own_cpu_ms_per_rcpt"] is not None else "-"
            rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-"
            done = "" if r["complete"] else " (INCOMPLETE)"
            if r.get("receiver_lag_s") is not None:
                done += f" (receiver lag {r['receiver_lag_s']:.1f} s)"
            elif t in ("unsubrelay+events", "unsubrelay+slow"):
                done += " (receiver INCOMPLETE)"
            print(f"| {size_kb} KB | {rcpts} | {t}{done} | {r['messages_per_s']:.0f} | {r['recipients_per_s']:.0f} "
                  f"| {r['cpu_ms_per_rcpt']:.3f} | {own} | {rss} | {vs_pf} | {vs_copies} | {vs_direct} "
                  f"| {spread[t][0]:.0f}-{spread[t][1]:.0f} |")


def main():
    args = parse_args()
    targets = args.targets.split(",")
    if "postfix" in targets and os.path.exists("/etc/postfix/main.cf"):
        sys.exit("a Postfix configuration exists in /etc/postfix: this benchmark runs only on a machine without one")
    options = {"relay_config": json.loads(args.relay_config) if args.relay_config else None,
               "relay_cpus": args.relay_cpus, "copies_max": args.copies_max}
    if args.smoke:
        print("SMOKE RUN: 20 messages, one run, no warm-up. It checks the script; it is NOT a figure.", flush=True)
    work = tempfile.mkdtemp(prefix="unsubrelay-bench-")
    os.chmod(work, 0o755)
    rows = []
    try:
        for cell in args.cells.split(","):
            size_kb, rcpts = (int(x) for x in cell.split(":"))
            message = campaign_file(work, size_kb * 1024)
            # Interleaved repeats, median by recipients/s: this 2-core VM's disk and CPU
            # move single runs by +/-20%.
            runs = {t: [] for t in targets}
            for _ in range(args.repeat):
                for t in targets:
                    runs[t].append(run_target(t, work, message, args.messages, rcpts, args.warmup, options))
            results = {t: sorted(r, key=lambda x: x["recipients_per_s"])[len(r) // 2] for t, r in runs.items()}
            spread = {t: (min(x["recipients_per_s"] for x in r), max(x["recipients_per_s"] for x in r))
                      for t, r in runs.items()}
            rows.append((size_kb, rcpts, results, spread))
            print(f"{size_kb} KB x {rcpts} rcpt, {args.messages} msgs after {args.warmup} warm-up, median of "
                  f"{args.repeat}: " + ", ".join(
                      f"{t} {results[t]['recipients_per_s']:.0f} rcpt/s"
                      f"{'' if all(x['complete'] for x in runs[t]) else ' (INCOMPLETE)'}" for t in targets), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, args.repeat)
    if args.smoke:
        print("\nSMOKE RUN: NOT A FIGURE.")


if __name__ == "__main__":
    main()
