"""A fleet: two relays share one PostgreSQL store (scripts/test-postgres.sh provides the server)."""

import os
import re
import smtplib
import subprocess
import unittest
import uuid

from relay import BIN, Relay, wait_until


def campaign(email_id, launch):
    return (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n\r\n"
            "Unsubscribe: *|UNSUBSCRIBE|*\r\n").encode()


class FleetTest(unittest.TestCase):
    def setUp(self):
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "fleet_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        self.url = server.rsplit("/", 1)[0] + "/" + self.database
        self.relays = []

    def tearDown(self):
        for r in self.relays:
            r.stop()
        subprocess.run(["psql", os.environ["UNSUBRELAY_TEST_PG_URL"], "-q", "-c",
                        f"DROP DATABASE IF EXISTS {self.database}"], check=False)

    def relay(self, keys_file=None):
        extra = {"store": {"kind": "postgresql", "url": self.url}, "unsubscribe": {"base_url": "https://u.example"}}
        if keys_file:
            extra["unsubscribe"]["keys_file"] = keys_file
        r = Relay(extra=extra)
        self.relays.append(r)
        return r

    def test_unsubscribe_on_one_relay_suppresses_on_another(self):
        a = self.relay()
        keys = os.path.join(a.dir, "fleet-keys.yaml")
        subprocess.run([BIN, "keygen", "--id", "fleet1", "-o", keys], check=True, capture_output=True)
        a.extra["unsubscribe"]["keys_file"] = keys
        a.write_config()
        a.start()
        b = self.relay(keys_file=keys).start()

        with smtplib.SMTP("127.0.0.1", a.port, timeout=30) as s:
            s.sendmail("news@example.com", ["alice@example.org"], campaign("100", "L-A"))
        with open(a.wait_for_outbox(1)[0], "rb") as f:
            link = re.search(rb"List-Unsubscribe: <https://u.example(/u/[A-Za-z0-9_-]+)>", f.read()).group(1).decode()
        # Instance B serves the link that instance A injected (shared keys, shared store).
        code, _, body = b.http("POST", link, "List-Unsubscribe=One-Click",
                               {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((code, body), (200, b"unsubscribed\n"))

        with smtplib.SMTP("127.0.0.1", b.port, timeout=30) as s:
            s.sendmail("news@example.com", ["alice@example.org", "bob@example.org"], campaign("200", "L-B"))
        wait_until(lambda: "status=suppressed" in b.read_log(), what="suppression on instance B")
        wait_until(lambda: b.spool_ids() == [], what="B's spool to empty")
        delivered = []
        for path in b.outbox_files():
            with open(path, "rb") as f:
                delivered.append(re.search(rb"^Delivered-To: (.+)\r\n", f.read(), re.M).group(1).decode())
        self.assertEqual(delivered, ["bob@example.org"])
        self.assertRegex(b.read_log(), r"to=<alice@example.org>, delay=\d+, status=suppressed")
        # Both instances see the same numbers.
        for r in (a, b):
            stats = r.cli("stats", "--campaign", "200").stdout
            row = [l for l in stats.splitlines() if l.startswith("200")][0].split()
            self.assertEqual(row[3:8], ["1", "1", "0", "0", "1"])  # sent delivered deferred bounced suppressed


if __name__ == "__main__":
    unittest.main()
