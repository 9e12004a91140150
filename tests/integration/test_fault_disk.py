"""Fault injection: the spool's disk fills up while clients send.

The spool is a small tmpfs (mounted by the test; CI runs as root). The upstream
is down, so every accepted message stays on that disk until it is full. The
relay must then refuse with 452 4.3.1 (or 451), never answer 250 for a message
it could not store, leave no partial file behind, and keep serving. Once the
upstream is back, exactly the acknowledged messages are delivered.
"""

import os
import smtplib
import subprocess
import unittest

from faults import Sink, report, send
from relay import Relay, free_port, wait_until

SPOOL_BYTES = 3 * 1024 * 1024
MESSAGE_BYTES = 100 * 1024


def send_big(port, test_id):
    """(code, queue id or reply text) for one 100 KB message."""
    from faults import message
    body = message(test_id, MESSAGE_BYTES)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("sender@example.com")
        s.rcpt(f"rcpt-{test_id}@example.org")
        code, text = s.data(body)
        return code, text.decode(errors="replace")


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"},
                           spool={"retry_min_seconds": 1, "retry_max_seconds": 1}, log={"level": "info"})
        os.makedirs(self.relay.spool_dir)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPOOL_BYTES}", "tmpfs", self.relay.spool_dir],
                               capture_output=True, text=True)
        self.assertEqual(mount.returncode, 0, f"this test mounts a tmpfs and needs root: {mount.stderr}")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.relay.spool_dir]))
        self.addCleanup(self.relay.stop)

    def test_full_spool_gets_4xx_never_250_and_loses_nothing(self):
        relay = self.relay.start()
        acked, refusals = [], []
        for n in range(200):
            code, text = send_big(relay.port, f"d{n}")
            if code == 250:
                acked.append(f"d{n}")
            else:
                refusals.append((code, text))
                break
        self.assertTrue(refusals, f"{len(acked)} messages of 100 KB fitted in a {SPOOL_BYTES}-byte spool")
        self.assertGreater(len(acked), 5)
        code, text = refusals[0]
        self.assertIn(code, (451, 452), text)
        self.assertEqual(code, 452, f"a full disk is 452 4.3.1 Insufficient system storage: {text}")
        self.assertIn("4.3.1", text)
        # Still full: still refused, the relay still answers, nothing half-written stays behind.
        for n in range(3):
            code, text = send_big(relay.port, f"again{n}")
            self.assertIn(code, (451, 452), text)
        self.assertEqual(os.listdir(os.path.join(relay.spool_dir, "incoming")), [])
        self.assertEqual(len(relay.spool_ids()), len(acked))
        log = relay.read_log()
        self.assertIn("No space left on device", log)
        self.assertEqual(relay.stop(), 0)

        # The upstream comes back: exactly the acknowledged messages arrive.
        with Sink() as sink:
            relay.upstream["port"] = sink.port
            relay.write_config()
            relay.start()
            wait_until(lambda: relay.spool_ids() == [], timeout=120, what="the spool to drain")
            self.assertEqual(sorted(sink.ids()), sorted(acked))
            self.assertEqual(relay.stop(), 0)
        report(f"disk full: {SPOOL_BYTES // 1024} KB tmpfs spool, {len(acked)} x 100 KB acknowledged, "
               f"then '{refusals[0][0]} {refusals[0][1][:60]}'; after the upstream returned "
               f"{len(acked)} delivered, 0 lost, 0 partial files")


if __name__ == "__main__":
    unittest.main()
