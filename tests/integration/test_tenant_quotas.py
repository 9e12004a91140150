"""Tenant quotas on the real relay (SPEC Part 3 "Quotas and fairness", issue 24):
tenants[].limits.messages_per_hour and recipients_per_day refuse with 451 4.7.1
at MAIL FROM or RCPT TO, logged and counted in /metrics; everything accepted is
delivered; on PostgreSQL two relays share one tenant's count
(scripts/test-postgres.sh provides the server)."""

import os
import re
import smtplib
import subprocess
import unittest
import uuid

from relay import BIN, Relay, make_users_file, wait_until
from test_tenants import PASSWORDS, TenantClient


def message(sender, n=0):
    return (f"From: News <{sender}>\r\nTo: list@example.org\r\nSubject: news {n}\r\n\r\nHello {n}\r\n").encode()


def make_keys(directory):
    for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml"), ("beta1", "beta-keys.yaml")):
        made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(directory, name)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise AssertionError(made.stderr)


def configure(relay, keys_dir, acme_limits, beta_limits):
    """acme submits by AUTH, beta from 127.0.0.2 (its network)."""
    d = relay.dir
    relay.smtp.update({"auth": {"users_file": make_users_file(d, PASSWORDS), "require_tls": False}})
    relay.extra["unsubscribe"] = {"keys_file": os.path.join(keys_dir, "top-keys.yaml"),
                                  "base_url": "https://unsub.example.com"}
    relay.extra["tenants"] = [
        {"id": "acme", "smtp_users": ["acme-app"], "sender_domains": ["acme.example"],
         "keys_file": os.path.join(keys_dir, "acme-keys.yaml"), "limits": acme_limits},
        {"id": "beta", "networks": ["127.0.0.2/32"], "sender_domains": ["beta.example"],
         "keys_file": os.path.join(keys_dir, "beta-keys.yaml"), "limits": beta_limits},
    ]
    relay.write_config()


def quota_refusals(relay, tenant, quota):
    code, _, body = relay.http("GET", "/metrics")
    if code != 200:
        raise AssertionError(f"/metrics answered {code}")
    found = re.search(rf'^unsubrelay_quota_refusals_total{{tenant="{tenant}",quota="{quota}"}} (\d+)$',
                      body.decode(), re.M)
    return int(found.group(1)) if found else None


class QuotasBase(TenantClient):
    """acme: messages_per_hour 2; beta: recipients_per_day 3."""

    def store_settings(self):
        raise NotImplementedError

    def setUp(self):
        self.relay = Relay(extra={"store": self.store_settings()})
        make_keys(self.relay.dir)
        configure(self.relay, self.relay.dir, {"messages_per_hour": 2}, {"recipients_per_day": 3})
        self.relay.start()
        self.addCleanup(self.stop_relay)

    def assert_all_delivered(self, count):
        """Every accepted copy arrives, and no more."""
        self.relay.wait_for_outbox(count)
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        self.assertEqual(len(self.relay.outbox_files()), count)

    def test_messages_per_hour_refuses_the_third_message_at_mail_from(self):
        acme = self.smtp("acme-app")
        for n in range(2):
            self.assertEqual(acme.sendmail("news@acme.example", ["x@example.org"], message("news@acme.example", n)), {})
        code, text = acme.mail("news@acme.example")
        self.assertEqual((code, text[:5]), (451, b"4.7.1"))
        self.assertIn(b"messages_per_hour", text)
        acme.rset()
        # A new connection is refused as well: the count is the tenant's, not the session's.
        code, _ = self.smtp("acme-app").mail("news@acme.example")
        self.assertEqual(code, 451)
        # Another tenant still sends.
        self.assertEqual(self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["y@example.org"],
                                                                message("news@beta.example")), {})
        self.assert_all_delivered(3)
        self.assertRegex(self.relay.read_log(),
                         r"quota: tenant acme refused: messages_per_hour count 2, limit 2")
        self.assertEqual(quota_refusals(self.relay, "acme", "messages_per_hour"), 2)
        self.assertEqual(quota_refusals(self.relay, "beta", "recipients_per_day"), 0)

    def test_recipients_per_day_refuses_the_fourth_rcpt(self):
        beta = self.smtp(source="127.0.0.2")
        self.assertEqual(beta.mail("news@beta.example")[0], 250)
        for rcpt in ("a@example.org", "b@example.org", "c@example.org"):
            self.assertEqual(beta.rcpt(rcpt)[0], 250)
        code, text = beta.rcpt("d@example.org")
        self.assertEqual((code, text[:5]), (451, b"4.7.1"))
        self.assertIn(b"recipients_per_day", text)
        # The three accepted recipients go on: the message is taken for them.
        self.assertEqual(beta.data(message("news@beta.example"))[0], 250)
        # Nothing is left today: the next transaction is refused at MAIL FROM.
        code, text = beta.mail("news@beta.example")
        self.assertEqual((code, text[:5]), (451, b"4.7.1"))
        beta.rset()
        # acme is not held back by beta's quota.
        self.assertEqual(self.smtp("acme-app").sendmail("news@acme.example", ["z@example.org"],
                                                        message("news@acme.example")), {})
        self.assert_all_delivered(4)
        self.assertEqual(quota_refusals(self.relay, "beta", "recipients_per_day"), 2)


class SqliteQuotasTest(QuotasBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}


class PostgresBase:
    def make_database(self, prefix):
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        database = prefix + uuid.uuid4().hex[:12]
        subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
        self.addCleanup(subprocess.run, ["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {database}"],
                        check=False)
        return server.rsplit("/", 1)[0] + "/" + database


class PostgresQuotasTest(PostgresBase, QuotasBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "postgresql", "url": self.make_database("quotas_")}


class FleetQuotasTest(PostgresBase, unittest.TestCase):
    """Two relays on one PostgreSQL database: acme's messages_per_hour 3 is counted once for both."""

    def setUp(self):
        self.url = self.make_database("quota_fleet_")
        self.a = Relay(extra={"store": {"kind": "postgresql", "url": self.url}})
        make_keys(self.a.dir)
        self.b = Relay(extra={"store": {"kind": "postgresql", "url": self.url}})
        for r in (self.a, self.b):
            configure(r, self.a.dir, {"messages_per_hour": 3}, {})
            r.start()
            self.addCleanup(self.stop, r)

    def stop(self, relay):
        self.assertEqual(relay.stop(), 0, relay.read_log()[-3000:])

    def send(self, relay, n):
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
            s.login("acme-app", PASSWORDS["acme-app"])
            return s.sendmail("news@acme.example", [f"r{n}@example.org"], message("news@acme.example", n))

    def refuses(self, relay):
        """MAIL FROM answers 451 4.7.1 (an accepted MAIL FROM is reset: nothing is sent)."""
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
            s.login("acme-app", PASSWORDS["acme-app"])
            code, text = s.mail("news@acme.example")
            if code == 250:
                s.rset()
                return False
            self.assertEqual((code, text[:5]), (451, b"4.7.1"))
            return True

    def stored_count(self):
        out = subprocess.run(["psql", self.url, "-qAt", "-c",
                              "SELECT COALESCE(SUM(value), 0) FROM unsubrelay_tenant_acme.quota_counts "
                              "WHERE name = 'messages'"], check=True, capture_output=True, text=True)
        return int(out.stdout.strip())

    def test_two_relays_share_one_tenants_count(self):
        self.assertEqual(self.send(self.a, 1), {})
        self.assertEqual(self.send(self.a, 2), {})
        self.assertEqual(self.send(self.b, 3), {})
        # Each relay writes what it accepted and reads the other's within about a second.
        wait_until(lambda: self.stored_count() == 3, what="3 messages counted in acme's schema")
        wait_until(lambda: self.refuses(self.a), what="relay A to refuse acme's 4th message")
        wait_until(lambda: self.refuses(self.b), what="relay B to refuse acme's 4th message")
        # Nothing accepted is lost, and nothing past the quota was accepted.
        self.a.wait_for_outbox(2)
        self.b.wait_for_outbox(1)
        wait_until(lambda: self.a.spool_ids() == [] and self.b.spool_ids() == [], what="both spools to empty")
        self.assertEqual((len(self.a.outbox_files()), len(self.b.outbox_files())), (2, 1))
        self.assertEqual(self.stored_count(), 3)


if __name__ == "__main__":
    unittest.main()
