"""A fleet: two relays share one PostgreSQL store (scripts/test-postgres.sh provides the server)."""

import json
import os
import re
import smtplib
import subprocess
import tempfile
import unittest
import uuid

from relay import BIN, Relay, start_webhook_receiver, wait_until


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

    def relay(self, keys_file=None, webhooks=None, api_keys_file=None):
        extra = {"store": {"kind": "postgresql", "url": self.url}, "unsubscribe": {"base_url": "https://u.example"}}
        if api_keys_file:
            extra["http"] = {"api_keys_file": api_keys_file}
        if keys_file:
            extra["unsubscribe"]["keys_file"] = keys_file
        if webhooks:
            extra["webhooks"] = webhooks
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

    def test_an_import_on_one_relay_suppresses_on_another(self):
        api_keys = os.path.join(tempfile.mkdtemp(), "api-keys")
        with open(api_keys, "w") as f:
            f.write("fleet-api-key-0123456789abcdef\n")
        a = self.relay(api_keys_file=api_keys).start()
        b = self.relay().start()
        # Relay A takes the import (with one bad row, reported with its line; the good ones are kept).
        body = "email,reason\ncarol@example.org,complaint\nnot-an-address,unsubscribe\nerin@example.org,\n"
        code, _, data = a.http("POST", "/api/v1/suppressions/import", body,
                               {"Authorization": "Bearer fleet-api-key-0123456789abcdef", "Content-Type": "text/csv"})
        self.assertEqual(code, 200, data)
        report = json.loads(data)
        self.assertEqual((report["rows"], report["added"], report["bad_rows"]), (2, 2, 1))
        self.assertEqual(report["errors"][0]["line"], 3)

        # Relay B, sharing only the store, holds the imported addresses back and sends the others.
        with smtplib.SMTP("127.0.0.1", b.port, timeout=30) as s:
            s.sendmail("news@example.com", ["carol@example.org", "dave@example.org", "erin@example.org"],
                       campaign("400", "L-I"))
        wait_until(lambda: b.spool_ids() == [] and len(b.outbox_files()) == 1, what="B's spool to empty")
        delivered = []
        for path in b.outbox_files():
            with open(path, "rb") as f:
                delivered.append(re.search(rb"^Delivered-To: (.+)\r\n", f.read(), re.M).group(1).decode())
        self.assertEqual(delivered, ["dave@example.org"])
        log = b.read_log()
        self.assertRegex(log, r"to=<carol@example.org>, .*status=suppressed \(complaint from import")
        self.assertRegex(log, r"to=<erin@example.org>, .*status=suppressed \(import from import")
        # B exports the import's events, as any relay of the fleet would.
        out = b.cli("export", "--since", "0")
        self.assertEqual(out.returncode, 0, out.stderr)
        imported = [json.loads(l) for l in out.stdout.splitlines() if '"import"' in l]
        self.assertEqual(sorted(e["email"] for e in imported), ["carol@example.org", "erin@example.org"])

    def test_webhooks_are_sent_once_by_the_fleet_and_taken_over(self):
        """No sleep proves "no duplicate": the sender posts events in id order from the shared
        cursor, so a marker event recorded after the others and seen at the receiver proves that
        any repeat of the earlier ones (a stale cursor, a second sender) would have come before it.
        After a kill -9 the at-least-once rule allows the dead sender's last posts again, no more."""
        webhook_port, bodies = start_webhook_receiver(self)
        secret = os.path.join(tempfile.mkdtemp(), "secret")
        with open(secret, "w") as f:
            f.write("fleet-secret\n")
        hooks = [{"url": f"http://127.0.0.1:{webhook_port}/events", "secret_file": secret, "lease_seconds": 3}]

        keys = os.path.join(tempfile.mkdtemp(), "fleet-keys.yaml")
        subprocess.run([BIN, "keygen", "--id", "fleet1", "-o", keys], check=True, capture_output=True)
        a = self.relay(keys_file=keys, webhooks=hooks).start()
        b = self.relay(keys_file=keys, webhooks=hooks).start()
        with smtplib.SMTP("127.0.0.1", a.port, timeout=30) as s:
            s.sendmail("news@example.com", [f"p{i}@example.org" for i in range(5)], campaign("300", "L-W"))
        links = {}
        for path in a.wait_for_outbox(5):
            with open(path, "rb") as f:
                copy = f.read()
            address = re.search(rb"^Delivered-To: (.+)\r\n", copy, re.M).group(1).decode()
            link = re.search(rb"List-Unsubscribe: <https://u.example(/u/[A-Za-z0-9_-]+)>", copy).group(1)
            links[address] = link.decode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        def unsubscribe(relay, n):
            self.assertEqual(relay.http("POST", links[f"p{n}@example.org"], "List-Unsubscribe=One-Click", form)[0], 200)

        def received():
            return [json.loads(b)["email"] for b in bodies]

        # Two relays, one receiver: each event arrives once, whichever relay took the click;
        # p2 is the marker, recorded after p0 and p1 were answered.
        # Each relay logs its first answer from the lease, taken or not: once both have, a
        # second sender could not start later unnoticed.
        decided = ("this relay is now the sender", "another relay is now the sender")
        wait_until(lambda: all(any(d in r.read_log() for d in decided) for r in (a, b)), timeout=30,
                   what="both relays' first answer from the webhook lease")
        unsubscribe(a, 0)
        unsubscribe(b, 1)
        unsubscribe(a, 2)
        wait_until(lambda: "p2@example.org" in received(), timeout=30, what="the marker event at the receiver")
        self.assertEqual(received(), ["p0@example.org", "p1@example.org", "p2@example.org"])
        senders = [r for r in (a, b) if "this relay is now the sender" in r.read_log()]
        self.assertEqual(len(senders), 1, "exactly one relay holds the webhook")
        others = [r for r in (a, b) if "another relay is now the sender" in r.read_log()]
        self.assertEqual(others, [r for r in (a, b) if r is not senders[0]],
                         "the other relay knows it is not the sender")

        # The sender dies: the other takes over within the lease and carries on from the shared
        # cursor (p4 the marker: a resend of p0-p2, or of p3, would come before it).
        sender, other = senders[0], (b if senders[0] is a else a)
        sender.kill9()
        unsubscribe(other, 3)
        unsubscribe(other, 4)
        wait_until(lambda: "p4@example.org" in received(), timeout=30, what="the marker after the take-over")
        # At least once: the kill may come between the receiver's 200 and the stored
        # position, so the new sender may post again the tail the dead one sent last
        # (in order, from the shared position), never an event before it, nothing lost.
        after = received()[3:]
        self.assertEqual(after[-2:], ["p3@example.org", "p4@example.org"])
        resent = after[:-2]
        self.assertIn(resent, [[], ["p2@example.org"], ["p1@example.org", "p2@example.org"],
                               ["p0@example.org", "p1@example.org", "p2@example.org"]])
        self.assertIn("this relay is now the sender", other.read_log())

if __name__ == "__main__":
    unittest.main()
