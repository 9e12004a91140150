"""Power loss: the spool and the SQLite store on a disk that keeps only what was synced.

The relay's spool and store live on powerfs (powerfs.py, docs/faults.md), in
each of its two models: drop (everything not fsynced is lost) and random (a
random part of it survives: whole writes, none, or torn at 4 KiB blocks; a
prefix of each directory's unsynced changes). Round after round, SMTP clients
send and one-click unsubscribes arrive over HTTP while the power is cut at a
random moment: every file-system operation fails from then on, the relay is
killed, and the disk keeps what its model keeps. The relay restarts on what
survived. At the end: every message acknowledged with 250 reached the
upstream, whole; every unsubscribe answered 200 still holds; no queue file
was moved to corrupt/ (every file the spool names in messages/ was whole when
named, so no cut can damage one).

Each test prints its seed; POWERLOSS_SEED=N replays its choices (when to cut,
what survives; thread timing still varies). FAULT_SCALE=full
(scripts/powerloss.sh) makes 200 cuts in each model; ctest makes fewer.
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
from powerloss import PowerDisk, the_seed
from relay import Relay, free_port, wait_until

CUTS = scale(12, 200)
RANDOM_CUTS = scale(8, 200)  # model random; the default run stays short
SQLITE_RANDOM_CUTS = scale(5, 50)
SENDERS = 4
UNSUBSCRIBERS = 2
LINKS = scale(100, 1200)
LONGEST_ROUND = scale(1.5, 2.0)  # seconds of load before a cut, at most
DRAIN_EVERY = 20  # rounds; then the power stays on until the spool is empty, so the backlog stays bounded


def campaign(email_id, launch):
    return (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n"
            "\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n").encode()


def commits_kept(disk, name, mode, commits=50):
    """commits committed transactions on a new WAL database, then a cut: how many
    survived, and SQLite's integrity_check."""
    path = os.path.join(disk.path, name)
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    db.execute(f"PRAGMA synchronous={mode}")
    db.execute("CREATE TABLE t (n INTEGER)")
    for n in range(commits):
        db.execute("INSERT INTO t VALUES (?)", (n,))  # each a committed transaction
    disk.cut()
    db.close()
    disk.power_on()
    db = sqlite3.connect(path)
    tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0]
    kept = db.execute("SELECT count(*) FROM t").fetchone()[0] if tables else 0
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    return kept, integrity


class SqliteModeTest(unittest.TestCase):
    """The file system catches what it must: WAL with synchronous=NORMAL loses commits
    on a power cut, WAL with synchronous=FULL (the relay's setting) keeps them."""

    def test_wal_normal_loses_commits_and_full_keeps_them(self):
        with PowerDisk(tempfile.mkdtemp(prefix="unsubrelay-powerfs-")) as disk:
            kept = {mode: commits_kept(disk, f"{mode}.db", mode) for mode in ("NORMAL", "FULL")}
        self.assertLess(kept["NORMAL"][0], 50, "the model must drop commits that WAL+NORMAL never synced")
        self.assertEqual(kept["FULL"], (50, "ok"), "WAL+FULL syncs every commit")
        report(f"sqlite on powerfs: 50 commits, then a power cut: WAL+NORMAL kept {kept['NORMAL'][0]}, "
               f"WAL+FULL kept {kept['FULL'][0]}")

    def test_wal_full_keeps_every_commit_whatever_else_survives(self):
        """Model random: whatever part of the unsynced writes survives, WAL+FULL keeps
        all 50 commits and the database stays whole; WAL+NORMAL keeps a prefix."""
        seed = the_seed("sqlite on powerfs, model random")
        normal = []
        with PowerDisk(tempfile.mkdtemp(prefix="unsubrelay-powerfs-"), "random", seed) as disk:
            for n in range(SQLITE_RANDOM_CUTS):
                full = commits_kept(disk, f"full{n}.db", "FULL")
                self.assertEqual(full, (50, "ok"), f"WAL+FULL, cut {n} (seed {seed})")
                normal.append(commits_kept(disk, f"normal{n}.db", "NORMAL"))
                self.assertEqual(normal[-1][1], "ok", f"WAL+NORMAL, cut {n} (seed {seed})")
            stats = disk.stats()
        report(f"sqlite on powerfs, model random: {SQLITE_RANDOM_CUTS} cuts after 50 commits each: WAL+FULL kept "
               f"50 every time; WAL+NORMAL kept {sorted(k for k, _ in normal)}; integrity ok every time; "
               f"{stats['writes_kept']} unsynced writes kept, {stats['writes_torn']} torn, "
               f"{stats['writes_dropped']} dropped (seed {seed})")


BLOCK = 4096


def fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PowerModelTest(unittest.TestCase):
    """What each model keeps, seen by a program: in d/f 4 blocks synced with the
    name, then three unsynced writes of 2 blocks each (a, b, c); d/g written and
    fsynced, its name never synced."""

    def one_cut(self, disk, n):
        d = os.path.join(disk.path, f"d{n}")
        os.mkdir(d)
        fsync_directory(disk.path)
        fd = os.open(os.path.join(d, "f"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"s" * 4 * BLOCK)
        os.fsync(fd)
        fsync_directory(d)
        for letter in b"abc":
            os.write(fd, bytes([letter]) * 2 * BLOCK)
        os.close(fd)
        fd = os.open(os.path.join(d, "g"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"g" * BLOCK)
        os.fsync(fd)
        os.close(fd)
        disk.cut()
        disk.power_on()
        with open(os.path.join(d, "f"), "rb") as f:
            data = f.read()
        self.assertEqual(data[:4 * BLOCK], b"s" * 4 * BLOCK, "synced data must survive")
        seen = []  # per unsynced write: kept, dropped or torn
        for i, letter in enumerate(b"abc"):
            blocks = [data[(4 + 2 * i + k) * BLOCK:(5 + 2 * i + k) * BLOCK] for k in range(2)]
            for block in blocks:  # a block is as of one moment: its write, or what was there before
                self.assertIn(block, (bytes([letter]) * BLOCK, b"\0" * BLOCK, b""), f"cut {n}, write {i}")
            kept = sum(block == bytes([letter]) * BLOCK for block in blocks)
            seen.append(("dropped", "torn", "kept")[kept])
        return tuple(seen), os.path.exists(os.path.join(d, "g"))

    def test_drop_keeps_only_what_was_synced(self):
        with PowerDisk(tempfile.mkdtemp(prefix="unsubrelay-powerfs-")) as disk:
            for n in range(3):
                self.assertEqual(self.one_cut(disk, n), (("dropped",) * 3, False))

    def test_random_keeps_a_random_part_of_the_rest(self):
        seed = the_seed("powerfs model random")
        outcomes = []
        with PowerDisk(tempfile.mkdtemp(prefix="unsubrelay-powerfs-"), "random", seed) as disk:
            for n in range(40):
                outcomes.append(self.one_cut(disk, n))
            stats = disk.stats()
        writes = [w for seen, _ in outcomes for w in seen]
        for kind in ("kept", "dropped", "torn"):
            self.assertIn(kind, writes, f"no unsynced write {kind} in 40 cuts (seed {seed})")
        self.assertIn(("kept",) * 3, [seen for seen, _ in outcomes], f"seed {seed}")
        self.assertEqual({g for _, g in outcomes}, {True, False},
                         f"an unsynced name must survive some cuts and not others (seed {seed})")
        self.assertEqual(stats["writes_kept"] + stats["writes_dropped"] + stats["writes_torn"], 3 * 40)


class ReadErrorTest(unittest.TestCase):
    """A queue file that cannot be read (EIO) is not damaged: it waits, it is never
    moved to corrupt/ (that would lose a message acknowledged with 250)."""

    def test_read_errors_defer_never_quarantine(self):
        # spool.format: files on purpose: a queue file's EIO (a segment's stops the start: docs/spool.md).
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"},
                      spool={"format": "files"}, log={"level": "info"})
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


class PowerCutBase:
    """The relay under load and power cuts; a subclass picks the model, how many, and the spool's format."""
    MODEL, CUTS = "drop", CUTS
    # spool.format: files on purpose in the first two: the queue-file spool is proven too. {}: the
    # default, the group-committed segments (docs/spool.md).
    SPOOL = {"format": "files"}

    def spool_empty(self):
        return self.relay.spool_ids() == []  # `queue list`: queue files and segments, beside the running relay

    def setUp(self):
        self.seed = the_seed(f"power loss, model {self.MODEL}")
        self.sink = Sink().__enter__()
        self.addCleanup(self.sink.__exit__)
        self.relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": self.sink.port, "tls": "none",
                                     "max_connections": 8},
                           log={"level": "info"})
        self.disk = PowerDisk(self.relay.dir, self.MODEL, self.seed).__enter__()
        self.addCleanup(self.disk.__exit__)
        self.relay.spool["path"] = os.path.join(self.disk.path, "spool")
        self.relay.spool.update(self.SPOOL)
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
        wait_until(self.spool_empty, timeout=600, interval=0.5, what="the spool to drain")
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
        seed = self.seed
        rng = random.Random(seed)
        self.relay.start()
        links = self.links()
        self.relay.kill9()
        todo = list(links)
        kinds = []
        for n in range(self.CUTS):
            kinds.append(self.one_round(rng, todo))
            if n % DRAIN_EVERY == DRAIN_EVERY - 1:
                self.drain()

        # Power stays on: the relay delivers what survived, and answers for the unsubscribes.
        self.start()
        wait_until(self.spool_empty, timeout=600, interval=0.5, what="the spool to drain")
        not_held = [link for link in sorted(self.unsubscribed)
                    if b"no longer receives" not in self.relay.http("GET", link)[2]]
        corrupt_dir = os.path.join(self.relay.spool_dir, "corrupt")
        corrupt = os.listdir(corrupt_dir) if os.path.isdir(corrupt_dir) else []
        quarantined = re.findall(r".*moved to corrupt/.*", self.relay.read_log())  # also those a later cut undid
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
        # Every name in messages/ was given to a whole, fsynced file, and marks are
        # single bytes: no cut can damage a queue file, so nothing may be quarantined.
        self.assertEqual((corrupt, quarantined[:5]), ([], []), f"queue files moved to corrupt/ (seed {seed})")
        self.assertGreaterEqual(stats["cuts"], self.CUTS)
        self.assertGreaterEqual(len(self.acked), 10, "too little load to prove anything")
        self.assertGreaterEqual(len(self.unsubscribed), 10, "too few unsubscribes to prove anything")
        duplicates = sum(n - 1 for n in delivered.values())
        dropped = (f"kept {stats['writes_kept']} unsynced writes whole, tore {stats['writes_torn']} and dropped "
                   f"{stats['writes_dropped']}, kept {stats['entry_changes_kept']} unsynced directory changes and "
                   f"dropped {stats['entry_changes_dropped']}" if self.MODEL == "random" else
                   f"dropped {stats['dropped_write_ranges']} unsynced write ranges and "
                   f"{stats['dropped_entry_changes']} unsynced directories")
        spool = ", spool.format: " + self.SPOOL.get("format", "segments")
        report(f"power loss, model {self.MODEL}{spool}: {self.CUTS} cuts ({kinds.count('start-up')} during start-up), "
               f"{len(self.attempted)} messages tried, {len(self.acked)} acknowledged, all delivered, 0 lost, "
               f"0 half-written, {duplicates} duplicate cop(ies), {len(set(delivered) - self.acked)} delivered "
               f"without a 250 reaching the client; {len(self.unsubscribed)} unsubscribes answered 200, 0 lost; "
               f"{len(corrupt)} file(s) in corrupt/; sqlite integrity {integrity}; powerfs: "
               f"{stats['fsync']} fsync, {stats['fsyncdir']} directory fsync, {dropped} (seed {seed})")


class PowerCutTest(PowerCutBase, unittest.TestCase):
    MODEL, CUTS = "drop", CUTS


class RandomPowerCutTest(PowerCutBase, unittest.TestCase):
    MODEL, CUTS = "random", RANDOM_CUTS


class SegmentPowerCutTest(PowerCutBase, unittest.TestCase):
    MODEL, CUTS, SPOOL = "drop", scale(6, 200), {}


class SegmentRandomPowerCutTest(PowerCutBase, unittest.TestCase):
    MODEL, CUTS, SPOOL = "random", scale(6, 200), {}


if __name__ == "__main__":
    unittest.main()
