"""Power loss: the spool and the SQLite store on a disk that keeps only what was synced.

The relay's spool and store live on powerfs (powerfs.py: the pessimistic POSIX
model, docs/faults.md). Round after round, SMTP clients send and one-click
unsubscribes arrive over HTTP while the power is cut at a random moment: every
file-system operation fails from then on, the relay is killed, and everything
not fsynced is dropped. The relay restarts on what survived. At the end:
every message acknowledged with 250 reached the upstream, whole; every
unsubscribe answered 200 still holds.

FAULT_SCALE=full (scripts/powerloss.sh) makes 200 cuts; ctest makes fewer.
"""

import os
import random
import re
import smtplib
import sqlite3
import tempfile
import threading
import unittest

from faults import Sink, message, report, scale, send
from powerloss import PowerDisk
from relay import Relay, free_port, wait_until

CUTS = scale(12, 200)
SENDERS = 4
UNSUBSCRIBERS = 2
LINKS = scale(100, 1200)
LONGEST_ROUND = scale(1.5, 2.0)  # seconds of load before a cut, at most
DRAIN_EVERY = 20  # rounds; then the power stays on until the spool is empty, so the backlog stays bounded


def campaign(email_id, launch):
    return (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n"
            "\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n").encode()


class SqliteModeTest(unittest.TestCase):
    """The file system catches what it must: WAL with synchronous=NORMAL loses commits
    on a power cut, WAL with synchronous=FULL (the relay's setting) keeps them."""

    def test_wal_normal_loses_commits_and_full_keeps_them(self):
        with PowerDisk(tempfile.mkdtemp(prefix="unsubrelay-powerfs-")) as disk:
            kept = {}
            for mode in ("NORMAL", "FULL"):
                path = os.path.join(disk.path, f"{mode}.db")
                db = sqlite3.connect(path, isolation_level=None)
                self.assertEqual(db.execute("PRAGMA journal_mode=WAL").fetchone()[0], "wal")
                db.execute(f"PRAGMA synchronous={mode}")
                db.execute("CREATE TABLE t (n INTEGER)")
                for n in range(50):
                    db.execute("INSERT INTO t VALUES (?)", (n,))  # each a committed transaction
                disk.cut()
                db.close()
                disk.power_on()
                db = sqlite3.connect(path)
                tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0]
                kept[mode] = db.execute("SELECT count(*) FROM t").fetchone()[0] if tables else 0
                db.close()
        self.assertLess(kept["NORMAL"], 50, "the model must drop commits that WAL+NORMAL never synced")
        self.assertEqual(kept["FULL"], 50, "WAL+FULL syncs every commit")
        report(f"sqlite on powerfs: 50 commits, then a power cut: WAL+NORMAL kept {kept['NORMAL']}, "
               f"WAL+FULL kept {kept['FULL']}")


class ReadErrorTest(unittest.TestCase):
    """A queue file that cannot be read (EIO) is not damaged: it waits, it is never
    moved to corrupt/ (that would lose a message acknowledged with 250)."""

    def test_read_errors_defer_never_quarantine(self):
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"},
                      log={"level": "info"})
        self.addCleanup(relay.stop)
        with PowerDisk(relay.dir) as disk:
            relay.spool["path"] = os.path.join(disk.path, "spool")
            relay.write_config()
            relay.start()
            ids = [send(relay.port, f"r{n}") for n in range(3)]  # the upstream is down: they stay queued
            self.assertEqual(relay.stop(), 0)
            disk.read_errors(True)
            relay.start()  # recovery reads every queue file: EIO
            wait_until(lambda: relay.read_log().count("cannot read queue file") >= 3, timeout=30,
                       what="the queue manager to meet the read errors")
            self.assertEqual(relay.spool_ids(), sorted(ids))
            self.assertEqual(os.listdir(os.path.join(relay.spool_dir, "corrupt")), [])
            self.assertEqual(relay.stop(), 0)
            disk.read_errors(False)
            with Sink() as sink:
                relay.upstream["port"] = sink.port
                relay.write_config()
                relay.start()
                wait_until(lambda: relay.spool_ids() == [], timeout=60, what="the spool to drain")
                self.assertEqual(sorted(sink.ids()), ["r0", "r1", "r2"])
                self.assertEqual(relay.stop(), 0)


class PowerCutTest(unittest.TestCase):
    def setUp(self):
        self.sink = Sink().__enter__()
        self.addCleanup(self.sink.__exit__)
        self.relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": self.sink.port, "tls": "none",
                                     "max_connections": 8},
                           log={"level": "info"})
        self.disk = PowerDisk(self.relay.dir).__enter__()
        self.addCleanup(self.disk.__exit__)
        self.relay.spool["path"] = os.path.join(self.disk.path, "spool")
        self.relay.extra["store"] = {"kind": "sqlite", "path": os.path.join(self.disk.path, "unsubrelay.db")}
        self.relay.extra["unsubscribe"] = {"base_url": "https://u.example"}
        self.relay.extra["http"]["requests_per_minute"] = 1000000  # one client address sends every request
        self.relay.write_config()
        self.addCleanup(self.relay.stop)
        self.lock = threading.Lock()
        self.attempted, self.acked = set(), set()
        self.unsubscribed = set()  # links whose one-click POST was answered 200
        self.next_id = 0

    def links(self):
        """Campaign copies through the relay: each carries its own one-click link."""
        for batch in range(0, LINKS, 100):
            rcpts = [f"u{n}@example.org" for n in range(batch, min(LINKS, batch + 100))]
            with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=60) as s:
                s.sendmail("news@example.com", rcpts, campaign("900", f"L{batch}"))
        wait_until(lambda: self.sink.count() >= LINKS, timeout=300, what=f"{LINKS} campaign copies")
        found = set()
        for _, data in self.sink.received:
            m = re.search(rb"List-Unsubscribe: <https://u.example(/u/[A-Za-z0-9_-]+)>", data)
            if m:
                found.add(m.group(1).decode())
        self.assertEqual(len(found), LINKS)
        return sorted(found)

    def sender(self, stop):
        while not stop.is_set():
            with self.lock:
                test_id = f"p{self.next_id}"
                self.next_id += 1
                self.attempted.add(test_id)
            try:
                send(self.relay.port, test_id, timeout=10)
            except (OSError, smtplib.SMTPException):
                continue  # refused (451 after the cut) or the relay died: never acknowledged
            with self.lock:
                self.acked.add(test_id)
            stop.wait(0.02)  # a steady load, not a flood the FUSE disk cannot deliver

    def unsubscriber(self, stop, todo):
        while not stop.is_set():
            with self.lock:
                if not todo:
                    return
                link = todo.pop()
            try:
                status, _, _ = self.relay.http("POST", link, body=b"List-Unsubscribe=One-Click",
                                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            except OSError:
                status = None
            with self.lock:
                if status == 200:
                    self.unsubscribed.add(link)
                else:
                    todo.insert(0, link)  # 503 or no answer: the user tries again later

    def start(self):
        """Recovery reads every queued file through FUSE: slower than on a real disk."""
        self.relay.start(wait=False)
        wait_until(self.relay._accepting, timeout=120, what="the relay to accept")

    def drain(self):
        self.start()
        wait_until(lambda: self.relay.spool_ids() == [], timeout=600, what="the spool to drain")
        self.relay.kill9()

    def one_round(self, rng, todo):
        early = rng.random() < 0.2
        if early:
            # Cut during start-up: recovery, the first deliveries.
            self.disk.arm(rng.randrange(1, 300))
            self.relay.start(wait=False)
            try:
                wait_until(self.disk.dead, timeout=10, what="an armed cut")
            except AssertionError:
                self.disk.cut()
            self.relay.kill9()
            self.disk.power_on()
            return "start-up"
        self.start()
        stop = threading.Event()
        threads = [threading.Thread(target=self.sender, args=(stop,)) for _ in range(SENDERS)]
        threads += [threading.Thread(target=self.unsubscriber, args=(stop, todo)) for _ in range(UNSUBSCRIBERS)]
        for t in threads:
            t.start()
        stop.wait(rng.uniform(0.0, LONGEST_ROUND))
        self.disk.cut()
        self.relay.kill9()
        stop.set()
        for t in threads:
            t.join()
        self.disk.power_on()
        return "load"

    def test_power_cuts_lose_nothing_acknowledged(self):
        rng = random.Random()
        seed = rng.randrange(1 << 30)
        rng.seed(seed)
        self.relay.start()
        links = self.links()
        self.relay.kill9()
        todo = list(links)
        kinds = []
        for n in range(CUTS):
            kinds.append(self.one_round(rng, todo))
            if n % DRAIN_EVERY == DRAIN_EVERY - 1:
                self.drain()

        # Power stays on: the relay delivers what survived, and answers for the unsubscribes.
        self.start()
        wait_until(lambda: self.relay.spool_ids() == [], timeout=600, what="the spool to drain")
        not_held = [link for link in sorted(self.unsubscribed)
                    if b"no longer receives" not in self.relay.http("GET", link)[2]]
        corrupt_dir = os.path.join(self.relay.spool_dir, "corrupt")
        corrupt = os.listdir(corrupt_dir) if os.path.isdir(corrupt_dir) else []
        self.assertEqual(self.relay.stop(), 0)
        stats = self.disk.stats()
        db = sqlite3.connect(self.relay.extra["store"]["path"])
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()

        delivered = {}
        half = []
        for _, data in self.sink.received:
            m = re.search(rb"X-Test-Id: (\S+)", data)
            if not m:
                continue  # a campaign copy from the start
            test_id = m.group(1).decode()
            delivered[test_id] = delivered.get(test_id, 0) + 1
            if not data.endswith(message(test_id).split(b"\r\n\r\n", 1)[1]):
                half.append(test_id)
        lost = self.acked - set(delivered)
        self.assertEqual(half, [], f"half-written messages reached the upstream (seed {seed})")
        self.assertEqual(lost, set(), f"acknowledged with 250 but never delivered (seed {seed}): {sorted(lost)[:20]}")
        self.assertEqual(set(delivered) - self.attempted, set(), "the upstream got messages nobody sent")
        self.assertEqual(not_held, [], f"unsubscribes answered 200 and then lost (seed {seed})")
        self.assertEqual(integrity, "ok")
        self.assertGreaterEqual(stats["cuts"], CUTS)
        self.assertGreaterEqual(len(self.acked), 10, "too little load to prove anything")
        self.assertGreaterEqual(len(self.unsubscribed), 10, "too few unsubscribes to prove anything")
        duplicates = sum(n - 1 for n in delivered.values())
        report(f"power loss: {CUTS} cuts ({kinds.count('start-up')} during start-up), {len(self.attempted)} "
               f"messages tried, {len(self.acked)} acknowledged, all delivered, 0 lost, 0 half-written, "
               f"{duplicates} duplicate cop(ies), {len(set(delivered) - self.acked)} delivered without a 250 "
               f"reaching the client; {len(self.unsubscribed)} unsubscribes answered 200, 0 lost; "
               f"{len(corrupt)} file(s) in corrupt/; sqlite integrity {integrity}; powerfs: "
               f"{stats['fsync']} fsync, {stats['fsyncdir']} directory fsync, {stats['dropped_write_ranges']} "
               f"unsynced write ranges and {stats['dropped_entry_changes']} unsynced directories dropped "
               f"(seed {seed})")


if __name__ == "__main__":
    unittest.main()
