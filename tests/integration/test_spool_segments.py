"""spool.format: segments on the real relay (issue 25, docs/spool.md): small
messages are records in shared segment files (no queue file each), a large
one is a queue file; `queue list` reads the segments beside the running
relay; a restart delivers what was queued; the segments go once delivered.
kill -9 under load: test_fault_crash.py (SegmentCrashRoundsTest).
`queue delete` of a segment message is a request the relay carries out
(SegmentDeleteTest). A queue of files left by a relay with spool.format: files
(what every relay before issue 25 wrote) is delivered after the upgrade to the
default, segments (UpgradeTest); going back to files strands nothing
(DowngradeTest)."""

import os
import re
import smtplib
import threading
import unittest

from faults import Sink, message as fault_message, send
from relay import Relay, free_port, wait_until


def message(n, body="hello"):
    return f"From: a@example.com\r\nTo: b@example.org\r\nSubject: m{n}\r\n\r\n{body}\r\n".encode()


class SegmentSpoolTest(unittest.TestCase):
    def setUp(self):
        # No upstream at first: what is accepted stays queued.
        self.relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"},
                           spool={"format": "segments", "segment_max_kb": 64})
        self.relay.start()
        self.addCleanup(lambda: self.assertEqual(self.relay.stop(), 0))

    def segments(self):
        return sorted(os.listdir(os.path.join(self.relay.spool_dir, "segments")))

    def test_messages_are_records_and_survive_a_restart(self):
        def send(start):
            with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
                for n in range(start, start + 10):
                    s.sendmail("a@example.com", [f"r{n}@example.org", f"s{n}@example.org"], message(n))

        threads = [threading.Thread(target=send, args=(k * 10,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.sendmail("a@example.com", ["big@example.org"], message("big", ("x" * 70 + "\r\n") * 1500))
        self.assertEqual(len(self.segments()), 1)  # 40 messages, one segment file
        self.assertEqual(len(self.relay.queue_file_ids()), 1)  # only the large one is a queue file
        code, _, metrics = self.relay.http("GET", "/metrics")  # the gauge counts records and files
        self.assertEqual(code, 200)
        self.assertIn("\nunsubrelay_spool_messages 41\n", metrics.decode())
        listed = self.relay.cli("queue", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(" in 41 Requests.", listed.stdout)
        self.assertIn("r7@example.org", listed.stdout)
        self.assertEqual(self.relay.stop(), 0)
        self.relay.upstream = {"kind": "directory", "directory": "var/outbox"}
        self.relay.write_config()
        self.relay.start()
        files = self.relay.wait_for_outbox(81)
        self.assertEqual(len(files), 81)  # 40 x 2 recipients and the large one
        wait_until(lambda: self.relay.cli("queue", "list").stdout.startswith("Mail queue is empty"),
                   interval=0.5, what="the queue to empty")
        # Nothing keeps the old segments: only the one being written is left.
        wait_until(lambda: len(self.segments()) == 1, what="delivered segments deleted")
        self.assertEqual(self.relay.spool_ids(), [])


class SegmentDeleteTest(unittest.TestCase):
    """`queue delete` of a message held in a segment: the command leaves a
    durable request (spool/requests/delete-ID), the relay deletes it."""

    def test_delete_while_the_relay_runs(self):
        # Every MAIL FROM gets a 454 (4xx): what is queued stays queued, retried each second.
        with Sink(throttle_every=1) as sink:
            relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none"},
                          spool={"format": "segments", "retry_min_seconds": 1, "retry_max_seconds": 1})
            relay.start()
            self.addCleanup(lambda: self.assertEqual(relay.stop(), 0))
            keep, drop = send(relay.port, "keep"), send(relay.port, "drop")
            self.assertEqual(relay.queue_file_ids(), [])  # both are segment records, no queue file
            wait_until(lambda: sink.mails >= 4, what="both messages tried and refused (twice in all)")
            self.assertEqual(set(relay.spool_ids()), {keep, drop})

            out = relay.cli("queue", "delete", drop)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(f"{drop}: delete requested", out.stdout)
            wait_until(lambda: set(relay.spool_ids()) == {keep}, what="the deleted message gone from queue list")
            self.assertIn(f"{drop}: deleted from the queue (queue delete)", relay.read_log())
            self.assertEqual(os.listdir(os.path.join(relay.spool_dir, "requests")), [])
            # Its entry in the scheduler goes at its next attempt, as a deleted queue file's does.
            wait_until(lambda: f"{drop}: removed from the queue by the operator" in relay.read_log(),
                       what="the scheduler to forget the deleted message")

            sink.throttle_every = 0  # the upstream takes mail again
            wait_until(lambda: "keep" in sink.ids(), what="the kept message delivered")
            wait_until(lambda: set(relay.spool_ids()) == set(), interval=0.2, what="the queue to empty")
            self.assertEqual(sink.ids(), ["keep"])  # the deleted one never reached the upstream

    def test_delete_during_a_delivery_attempt(self):
        # As with a queue file deleted then: the copy already handed to the upstream is sent, the outcome
        # has nowhere to go, and the message is gone; it is never sent again.
        with Sink(delay=3) as sink:  # 3 s before the upstream answers the end of DATA
            relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none"},
                          spool={"retry_min_seconds": 1, "retry_max_seconds": 1})
            relay.start()
            self.addCleanup(lambda: self.assertEqual(relay.stop(), 0))
            qid = send(relay.port, "busy")
            wait_until(lambda: "busy" in sink.attempts, what="the copy's DATA at the upstream")
            out = relay.cli("queue", "delete", qid)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(f"{qid}: delete requested", out.stdout)
            wait_until(lambda: f"{qid}: deleted from the queue (queue delete)" in relay.read_log(),
                       what="the relay to delete it")
            wait_until(lambda: sink.ids() == ["busy"], what="the copy under way delivered")
            wait_until(lambda: f"{qid}: removed" in relay.read_log(), what="the attempt finished")
            self.assertEqual(set(relay.spool_ids()), set())
            self.assertEqual(relay.cli("queue", "flush").returncode, 0)
            wait_until(lambda: "queue flush:" in relay.read_log(), what="the flush")
            self.assertEqual(sink.ids(), ["busy"])

    def test_delete_while_no_relay_runs(self):
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"},
                      spool={"format": "segments"})
        relay.start()
        keep, drop = send(relay.port, "keep"), send(relay.port, "drop")
        self.assertEqual(relay.stop(), 0)

        out = relay.cli("queue", "delete", drop)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"{drop}: delete requested", out.stdout)
        requests = os.path.join(relay.spool_dir, "requests")
        self.assertEqual(os.listdir(requests), [f"delete-{drop}"])
        self.assertEqual(set(relay.spool_ids()), {keep, drop})  # until a relay carries it out
        # Not a queue id: no request, nothing written outside requests/.
        bad = relay.cli("queue", "delete", "../../x")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no such message", bad.stderr)
        self.assertEqual(os.listdir(requests), [f"delete-{drop}"])
        # A request for a message nobody has, and a stray file: logged and dropped.
        for name in ("delete-00000000DEADBEEF", "junk"):
            with open(os.path.join(requests, name), "w") as f:
                f.write("x\n")

        relay.upstream = {"kind": "directory", "directory": "var/outbox"}
        relay.write_config()
        relay.start()
        self.addCleanup(lambda: self.assertEqual(relay.stop(), 0))
        relay.wait_for_outbox(1)
        wait_until(lambda: set(relay.spool_ids()) == set(), interval=0.2, what="the queue to empty")
        log = relay.read_log()
        self.assertIn(f"{drop}: deleted from the queue (queue delete)", log)
        self.assertIn("00000000DEADBEEF: queue delete: no such message in the queue; request dropped", log)
        self.assertIn("requests/junk: not a request this relay knows; removed", log)
        self.assertEqual(os.listdir(requests), [])
        files = relay.outbox_files()
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            self.assertIn(b"X-Test-Id: keep", f.read())


class SegmentCompactionTest(unittest.TestCase):
    """A long-deferred message does not keep every later segment alive: the
    relay copies it forward once more than 4 segments are listed."""

    def test_deferred_message_is_copied_forward(self):
        port = free_port()  # nothing listens yet: the first message is deferred for an hour
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"},
                      spool={"format": "segments", "segment_file_mb": 1, "segment_max_kb": 256,
                             "retry_min_seconds": 3600, "retry_max_seconds": 3600})
        relay.start()
        self.addCleanup(lambda: self.assertEqual(relay.stop(), 0))
        old = send(relay.port, "old")
        wait_until(lambda: re.search(r"attempts: 1", relay.cli("queue", "list").stdout), what="the deferral")
        segments = os.path.join(relay.spool_dir, "segments")
        with Sink(port=port) as sink:
            # 8 MB of 100 KB messages, delivered at once: 8+ segments of 1 MB that the old message would pin.
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                for n in range(80):
                    s.sendmail("sender@example.com", [f"r{n}@example.org"], fault_message(f"new{n}", 100_000))
            wait_until(lambda: sink.count() == 80, timeout=60, what="80 new messages delivered")
            # Without compaction the old message would keep all 8+ of them; the relay keeps at most 4.
            wait_until(lambda: len(os.listdir(segments)) <= 4, what="the segments the old message pinned deleted")
            self.assertRegex(relay.read_log(), r"spool: 1 long-queued message\(s\) copied to the newest segment")
            self.assertEqual(set(relay.spool_ids()), {old})
            # The copy is what a restart reads back (and, as after every start, tries at once).
            self.assertEqual(relay.stop(), 0)
            relay.start()
            wait_until(lambda: "old" in sink.ids(), what="the old message delivered after the restart")
            wait_until(lambda: set(relay.spool_ids()) == set(), interval=0.2, what="the queue to empty")
            self.assertEqual(sorted(sink.ids()).count("old"), 1)
            self.assertEqual(len(sink.ids()), 81)


class UpgradeTest(unittest.TestCase):
    """The upgrade: a queue of files, written by a relay with spool.format:
    files (the bytes every relay before issue 25 wrote: that code is unchanged),
    delivered once each by a relay with the default configuration (segments)."""

    def test_a_queue_of_files_is_delivered_after_the_upgrade(self):
        port = free_port()  # the upstream is down while the old relay runs
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"},
                      spool={"format": "files", "retry_min_seconds": 3600, "retry_max_seconds": 3600})
        relay.start()
        ids = {}
        for n in range(12):
            rcpts = [f"r{n}-{k}@example.org" for k in range(1 + n % 3)]
            ids[f"m{n}"] = send(relay.port, f"m{n}", rcpts)
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:  # a large one too
            s.sendmail("sender@example.com", ["big@example.org"], fault_message("big", 600_000))
        wait_until(lambda: len(os.listdir(os.path.join(relay.spool_dir, "state"))) >= 13,
                   what="every message tried and deferred (a state log each)")
        self.assertEqual(relay.stop(), 0)
        self.assertEqual(len(relay.queue_file_ids()), 13)  # queue files, as before
        self.assertEqual(os.listdir(os.path.join(relay.spool_dir, "segments")), [])
        self.assertTrue(set(ids.values()) <= set(relay.queue_file_ids()))

        del relay.spool["format"]  # the default: segments
        relay.spool.update({"retry_min_seconds": 1, "retry_max_seconds": 2})
        relay.write_config()
        with Sink(port=port) as sink:
            relay.start()
            self.addCleanup(lambda: self.assertEqual(relay.stop(), 0))
            wait_until(lambda: sink.count() >= 1 + sum(1 + n % 3 for n in range(12)), timeout=60,
                       what="every recipient's copy delivered")
            wait_until(lambda: set(relay.spool_ids()) == set(), interval=0.2, what="the queue to empty")
            self.assertEqual(relay.queue_file_ids(), [])
            expected = sorted([f"m{n}" for n in range(12) for _ in range(1 + n % 3)] + ["big"])
            self.assertEqual(sorted(sink.ids()), expected)  # each copy once, none lost


class DowngradeTest(unittest.TestCase):
    """Going back to spool.format: files: what the segments hold is still
    listed, deleted on request and delivered; new messages are queue files."""

    def test_segments_left_behind_are_delivered_by_a_files_relay(self):
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"})
        relay.start()
        ids = [send(relay.port, f"s{n}") for n in range(3)]
        self.assertEqual(relay.stop(), 0)
        self.assertEqual(relay.queue_file_ids(), [])  # all three in segments

        relay.spool["format"] = "files"
        relay.write_config()
        self.assertEqual(relay.spool_ids(), sorted(ids))  # queue list reads the segments left behind
        out = relay.cli("queue", "delete", ids[0])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("delete requested", out.stdout)
        relay.start()
        self.addCleanup(lambda: self.assertEqual(relay.stop(), 0))
        self.assertIn("spool.format: files, but var/spool/segments holds messages", relay.read_log())
        wait_until(lambda: relay.spool_ids() == sorted(ids[1:]), what="the requested deletion")
        new = send(relay.port, "new")
        self.assertEqual(relay.queue_file_ids(), [new])  # a queue file, as the configuration says
        self.assertEqual(relay.stop(), 0)

        relay.upstream = {"kind": "directory", "directory": "var/outbox"}
        relay.write_config()
        relay.start()
        relay.wait_for_outbox(3)
        wait_until(lambda: relay.spool_ids() == [], interval=0.2, what="the queue to empty")
        delivered = []
        for path in relay.outbox_files():
            with open(path, "rb") as f:
                delivered.append(re.search(rb"X-Test-Id: (\S+)", f.read()).group(1).decode())
        self.assertEqual(sorted(delivered), ["new", "s1", "s2"])


if __name__ == "__main__":
    unittest.main()
