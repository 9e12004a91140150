#!/usr/bin/env python3
"""The streamed import API against the command line (issue 22, point 3).

Generates a CSV of ROWS opt-outs (default 200,003: about 7 MB), imports it
with `unsubrelay suppression import` into a fresh SQLite store, then POSTs it
to /api/v1/suppressions/import of a relay running on another fresh SQLite
store, and prints rows/s of each. While the API import runs, a one-click
unsubscribe is posted every 0.25 s (each for a new token, so each writes; 180 at
most) and its latencies are printed (median, 95th percentile, max), with the same
figures for one-clicks on the idle relay before.

    ./bench/import_api_bench.py --bin build/release/unsubrelay [--rows 1000000] [--chunked]
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_csv(path, rows):
    reasons = ["unsubscribe", "complaint", "hard_bounce", "manual"]
    with open(path, "w") as f:
        f.write("email,reason\n")
        for i in range(rows):
            f.write(f"user{i}@example{i % 997}.com,{reasons[i % 4]}\n")


def write_config(directory, http_port=None, keys=None):
    path = os.path.join(directory, "unsubrelay.yaml")
    with open(path, "w") as f:
        f.write(f"smtp: {{listen: [\"127.0.0.1:{free_port()}\"], hostname: bench.test}}\n"
                f"upstream: {{kind: directory, directory: {directory}/outbox}}\n"
                f"spool: {{path: {directory}/spool}}\n"
                f"store: {{kind: sqlite, path: {directory}/store.db}}\n"
                f"unsubscribe: {{base_url: \"http://127.0.0.1:{http_port or 8080}\", keys_file: {directory}/keys.yaml}}\n")
        if http_port:
            f.write(f"http: {{listen: [\"127.0.0.1:{http_port}\"], api_keys_file: {keys}, "
                    "requests_per_minute: 1000000}\n")
    return path


def cli_import(binary, csv, rows):
    d = tempfile.mkdtemp(prefix="import-bench-cli-")
    try:
        config = write_config(d)
        subprocess.run([binary, "keygen", "-o", f"{d}/keys.yaml"], check=True, capture_output=True)
        started = time.monotonic()
        out = subprocess.run([binary, "suppression", "import", "-c", config, csv], capture_output=True, text=True)
        seconds = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        print(f"CLI: {rows} rows in {seconds:.1f} s: {rows / seconds:,.0f} rows/s ({out.stdout.strip()})")
    finally:
        shutil.rmtree(d)


def one_click(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.monotonic()
    c.request("POST", path, body="List-Unsubscribe=One-Click",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 200, r.status
    return time.monotonic() - started


def latencies(label, values):
    values = sorted(values)
    p95 = values[int(len(values) * 0.95) - 1] if len(values) >= 20 else values[-1]
    print(f"{label}: {len(values)} one-clicks, median {statistics.median(values) * 1000:.0f} ms, "
          f"95th {p95 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms")


def api_import(binary, csv, rows, chunked):
    d = tempfile.mkdtemp(prefix="import-bench-api-")
    relay = None
    try:
        keys = os.path.join(d, "api-keys")
        with open(keys, "w") as f:
            f.write("bench-key-0123456789abcdef\n")
        port = free_port()
        config = write_config(d, port, keys)
        subprocess.run([binary, "keygen", "-o", f"{d}/keys.yaml"], check=True, capture_output=True)
        tokens = []
        for i in range(200):
            url = subprocess.run([binary, "token", "sign", "-c", config, "--recipient", f"oc{i}@example.org",
                                  "--campaign", "222", "--launch", "111"], check=True, capture_output=True,
                                 text=True).stdout.strip()
            tokens.append(url[url.index("/u/"):])
        relay = subprocess.Popen([binary, "run", "-c", config], cwd=d, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and relay.poll() is None, "the relay did not start"
                time.sleep(0.1)
        idle = [one_click(port, tokens.pop()) for _ in range(20)]
        latencies("one-click, idle relay", idle)
        busy, done = [], threading.Event()

        def sample():
            while not done.is_set() and tokens:
                busy.append(one_click(port, tokens.pop()))
                done.wait(0.25)

        sampler = threading.Thread(target=sample)
        sampler.start()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        headers = {"Authorization": "Bearer bench-key-0123456789abcdef", "Content-Type": "text/csv"}
        started = time.monotonic()
        with open(csv, "rb") as f:
            if chunked:
                c.request("POST", "/api/v1/suppressions/import", body=iter(lambda: f.read(65536), b""),
                          headers=headers, encode_chunked=True)
            else:
                c.request("POST", "/api/v1/suppressions/import", body=f,
                          headers={**headers, "Content-Length": str(os.path.getsize(csv))})
            r = c.getresponse()
            report = json.loads(r.read())
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        assert r.status == 200 and report["rows"] == rows, (r.status, report)
        print(f"API{' (chunked)' if chunked else ''}: {rows} rows in {seconds:.1f} s: {rows / seconds:,.0f} rows/s "
              f"({report['added']} new, {report['bad_rows']} bad)")
        latencies("one-click during the API import", busy)
    finally:
        if relay:
            relay.terminate()
            assert relay.wait(60) == 0, "the relay did not stop cleanly"
        shutil.rmtree(d)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="build/release/unsubrelay")
    p.add_argument("--rows", type=int, default=200003)
    p.add_argument("--chunked", action="store_true")
    a = p.parse_args()
    binary = os.path.abspath(a.bin)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as d:
        csv = os.path.join(d, "optouts.csv")
        write_csv(csv, a.rows)
        print(f"input: {a.rows} rows, {os.path.getsize(csv) / 1e6:.1f} MB; load before: {os.getloadavg()[0]:.1f}")
        cli_import(binary, csv, a.rows)
        api_import(binary, csv, a.rows, a.chunked)


if __name__ == "__main__":
    main()
