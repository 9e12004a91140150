"""spool.format: segments on the real relay (issue 25, docs/spool.md): small
messages are records in shared segment files (no queue file each), a large
one is a queue file; `queue list` reads the segments beside the running
relay; a restart delivers what was queued; the segments go once delivered.
kill -9 under load: test_fault_crash.py (SegmentCrashRoundsTest)."""

import os
import smtplib
import threading
import unittest

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
        self.assertEqual(len(self.relay.spool_ids()), 1)  # only the large one is a queue file
        code, _, metrics = self.relay.http("GET", "/metrics")  # the gauge counts records and files
        self.assertEqual(code, 200)
        self.assertIn("\nunsubrelay_spool_messages 41\n", metrics.decode())
        listed = self.relay.cli("queue", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(" in 41 Requests.", listed.stdout)
        self.assertIn("r7@example.org", listed.stdout)
        segment_id = listed.stdout.split("\n")[1].split()[0]
        deleted = self.relay.cli("queue", "delete", segment_id)
        self.assertEqual(deleted.returncode, 1)
        self.assertIn("held in a segment", deleted.stderr)

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


if __name__ == "__main__":
    unittest.main()
