"""smtp.tenant_header on the real relay (SPEC Part 3, issue 24): a trusted
client that no login or network names submits as the tenant its X-Tenant:
header names; the header is read after DATA, the tenant's domains and quotas
are checked before the 250, the tenant is written into the queue file (it
survives a restart), and no copy carries the header."""

import email
import email.policy
import os
import re
import smtplib
import subprocess
import unittest

from relay import BIN, Relay, free_port, make_users_file, wait_until
from test_tenants import PASSWORDS, TenantClient


def message(sender, tenant=None, campaign=True, extra=""):
    head = f"X-Tenant: {tenant}\r\n" if tenant else ""
    head += f"From: News <{sender}>\r\nTo: list@example.org\r\nSubject: news\r\n{extra}"
    if campaign:
        head += "X-Campaign-Id: 700\r\nX-Launch-List-Id: 701\r\n"
    return (head + ("\r\nLeave: *|UNSUBSCRIBE|*\r\n" if campaign else "\r\nYour code is 1234\r\n")).encode()


class TenantHeaderTest(TenantClient, unittest.TestCase):
    """acme by AUTH (messages_per_hour: 3), beta by its network 127.0.0.2; 127.0.0.1 is
    trusted and nobody's, so it names its tenant with X-Tenant:."""

    def setUp(self):
        self.relay = Relay()
        self.configure(self.relay)
        self.relay.start()
        self.addCleanup(self.stop_relay)

    def configure(self, relay, upstream=None):
        d = relay.dir
        for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml"), ("beta1", "beta-keys.yaml")):
            if not os.path.exists(os.path.join(d, name)):
                made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(d, name)],
                                      capture_output=True, text=True)
                self.assertEqual(made.returncode, 0, made.stderr)
        relay.smtp.update({"auth": {"users_file": make_users_file(d, PASSWORDS), "require_tls": False},
                           "allow_networks": ["127.0.0.1/32", "127.0.0.2/32"], "tenant_header": "X-Tenant"})
        if upstream:
            relay.upstream = upstream
        relay.extra["unsubscribe"] = {"keys_file": os.path.join(d, "top-keys.yaml"),
                                      "base_url": "https://unsub.example.com"}
        relay.extra["tenants"] = [
            {"id": "acme", "smtp_users": ["acme-app"], "sender_domains": ["acme.example"],
             "keys_file": os.path.join(d, "acme-keys.yaml"), "limits": {"messages_per_hour": 3},
             "unsubscribe": {"base_url": "https://unsub.acme.example"}},
            {"id": "beta", "networks": ["127.0.0.2/32"], "sender_domains": ["beta.example"],
             "keys_file": os.path.join(d, "beta-keys.yaml"),
             "unsubscribe": {"base_url": "https://unsub.beta.example"}},
        ]
        relay.write_config()

    def delivered(self, count):
        out = []
        for path in self.relay.wait_for_outbox(count):
            with open(path, "rb") as f:
                raw = f.read()
            self.assertNotIn(b"x-tenant", raw.lower(), "the header left the relay")
            out.append(email.message_from_bytes(raw, policy=email.policy.default))
        return out

    def refused(self, client, sender, data, code, text):
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            client.sendmail(sender, ["x@example.org"], data)
        self.assertEqual(refused.exception.smtp_code, code, refused.exception.smtp_error)
        self.assertIn(text, refused.exception.smtp_error)

    def received(self, tenant):
        code, _, body = self.relay.http("GET", "/metrics")
        self.assertEqual(code, 200)
        found = re.search(rf'^unsubrelay_messages_received_total{{tenant="{tenant}"}} (\d+)$', body.decode(), re.M)
        return int(found.group(1)) if found else 0

    def test_the_header_names_the_tenant_and_leaves_no_copy(self):
        client = self.smtp()
        client.sendmail("news@acme.example", ["pat@example.org"], message("news@acme.example", "acme"))
        client.sendmail("news@beta.example", ["pat@example.org"], message("news@beta.example", "beta"))
        client.sendmail("alerts@beta.example", ["pat@example.org"],
                        message("alerts@beta.example", "beta", campaign=False))
        copies = self.delivered(3)
        links = sorted(m["List-Unsubscribe"] or "transactional" for m in copies)
        self.assertTrue(links[0].startswith("<https://unsub.acme.example/u/"), links)
        self.assertTrue(links[1].startswith("<https://unsub.beta.example/u/"), links)
        self.assertEqual(links[2], "transactional")
        self.assertEqual((self.received("acme"), self.received("beta")), (1, 2))
        # A login or a network names the tenant whatever the header says; the header still goes.
        self.smtp("acme-app").sendmail("news@acme.example", ["kim@example.org"],
                                       message("news@acme.example", "beta"))
        self.refused(self.smtp("acme-app"), "news@acme.example", message("news@beta.example", "beta"),
                     550, b"beta.example")
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["kim@example.org"],
                                               message("news@beta.example", "acme"))
        # The tenant default (the top level's keys and links) may be named too.
        self.smtp().sendmail("news@example.com", ["kim@example.org"], message("news@example.com", "default"))
        copies = self.delivered(6)
        self.assertEqual(len(copies), 6)
        self.assertEqual((self.received("acme"), self.received("beta"), self.received("default")), (2, 3, 1))
        self.assertIn("<https://unsub.example.com/u/", [(m["List-Unsubscribe"] or "")[:29] for m in copies])

    def test_a_header_tenant_is_held_to_its_domains_and_quotas(self):
        client = self.smtp()
        self.refused(client, "news@acme.example", message("news@acme.example", "beta"), 550,
                     b"domain acme.example is not one of")
        self.refused(client, "news@beta.example", message("news@acme.example", "beta"), 550,
                     b"From: header domain acme.example")
        self.refused(client, "news@beta.example", message("news@beta.example", "gamma"), 550,
                     b"X-Tenant: gamma names no tenant")
        self.refused(client, "news@beta.example", message("news@beta.example"), 550, b"no tenant for this client")
        self.refused(client, "news@beta.example", message("news@beta.example", "beta", extra="X-Tenant: acme\r\n"),
                     550, b"more than one X-Tenant")
        self.assertEqual(self.relay.spool_ids(), [])
        # acme may send three messages an hour: the fourth is refused after DATA, with a 4xx.
        for n in range(3):
            client.sendmail("news@acme.example", [f"q{n}@example.org"], message("news@acme.example", "acme"))
        self.refused(client, "news@acme.example", message("news@acme.example", "acme"), 451,
                     b"messages_per_hour")
        self.assertEqual(len(self.delivered(3)), 3)
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        self.assertEqual(len(self.relay.outbox_files()), 3)

    def survives_a_restart(self, spool_format, stored):
        # No upstream: the message stays queued; the tenant is on disk, not only in memory.
        self.stop_relay()
        closed = free_port()
        self.relay.spool["format"] = spool_format
        self.configure(self.relay, {"kind": "smtp", "host": "127.0.0.1", "port": closed, "tls": "none"})
        self.relay.start()
        self.smtp().sendmail("news@acme.example", ["lee@example.org"], message("news@acme.example", "acme"))
        ids = self.relay.spool_ids()
        self.assertEqual(len(ids), 1)
        stored(ids[0])
        self.stop_relay()
        self.configure(self.relay, {"kind": "directory", "directory": "var/outbox"})
        self.relay.start()
        (copy,) = self.delivered(1)
        self.assertTrue(copy["List-Unsubscribe"].startswith("<https://unsub.acme.example/u/"))
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")

    def test_the_tenant_survives_in_the_queue_file(self):
        # spool.format: files on purpose: the N record's slot is filled in place in the queue file.
        def stored(qid):
            with open(os.path.join(self.relay.spool_dir, "messages", qid), "rb") as f:
                self.assertRegex(f.read(), rb"\nN acme {28}\n")
        self.survives_a_restart("files", stored)

    def test_the_tenant_survives_in_a_segment(self):
        # The default spool: the record is written at the commit, tenant known (no slot).
        def stored(qid):
            d = os.path.join(self.relay.spool_dir, "segments")
            data = b""
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as f:
                    data += f.read()
            self.assertIn(qid.encode(), data)
            self.assertIn(b"\nN acme\n", data)
        self.survives_a_restart("segments", stored)

if __name__ == "__main__":
    unittest.main()
