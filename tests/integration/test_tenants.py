"""Tenants on the real relay (SPEC Part 3, issue 24): which tenant a client
submits as, the domains it may send as, each tenant's own links, keys, SES
fields and data, on SQLite and on PostgreSQL (scripts/test-postgres.sh)."""

import email
import email.policy
import os
import re
import smtplib
import sqlite3
import subprocess
import unittest
import uuid

from relay import BIN, Relay, make_users_file, wait_until

PASSWORDS = {"acme-app": "acme-secret", "beta-app": "beta-secret"}


def campaign(sender, email_id="500", launch="501", body="Leave: *|UNSUBSCRIBE|*", extra=""):
    return (f"From: News <{sender}>\r\nTo: list@example.org\r\nSubject: news\r\nX-Campaign-Id: {email_id}\r\n"
            f"X-Launch-List-Id: {launch}\r\n{extra}\r\n{body}\r\n").encode()


class TenantsBase:
    """acme submits by AUTH, beta from 127.0.0.2 (its network); nobody else is a tenant."""

    def store_settings(self):
        raise NotImplementedError

    def setUp(self):
        self.relay = Relay(extra={"store": self.store_settings()})
        d = self.relay.dir
        for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml"), ("beta1", "beta-keys.yaml")):
            made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(d, name)], capture_output=True,
                                  text=True)
            self.assertEqual(made.returncode, 0, made.stderr)
        users = make_users_file(d, PASSWORDS)
        self.relay.smtp.update({"auth": {"users_file": users, "require_tls": False}})
        self.relay.extra["unsubscribe"] = {"keys_file": os.path.join(d, "top-keys.yaml"),
                                           "base_url": "https://unsub.example.com"}
        self.relay.extra["tenants"] = [
            {"id": "acme", "smtp_users": ["acme-app"], "sender_domains": ["acme.example"],
             "keys_file": os.path.join(d, "acme-keys.yaml"),
             "unsubscribe": {"base_url": "https://unsub.acme.example"},
             "ses": {"configuration_set": "acme-marketing", "tenant": "acme"}},
            {"id": "beta", "networks": ["127.0.0.2/32"], "sender_domains": ["beta.example"],
             "keys_file": os.path.join(d, "beta-keys.yaml"),
             "unsubscribe": {"base_url": "https://unsub.beta.example"}},
        ]
        self.relay.write_config()
        self.relay.start()
        self.addCleanup(self.stop_relay)

    def stop_relay(self):
        code = self.relay.stop()
        self.assertEqual(code, 0, self.relay.read_log()[-3000:])

    def smtp(self, user=None, source="127.0.0.1"):
        s = smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30, source_address=(source, 0))
        self.addCleanup(s.close)
        s.ehlo("client.test")
        if user:
            s.login(user, PASSWORDS[user])
        return s

    def delivered(self, count):
        out = []
        for path in self.relay.wait_for_outbox(count):
            with open(path, "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def link(self, msg):
        return re.match(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)

    def test_a_client_sends_only_as_its_own_tenants_domains(self):
        acme = self.smtp("acme-app")
        code, text = acme.mail("news@beta.example")
        self.assertEqual((code, text[:5]), (550, b"5.7.1"))
        self.assertIn(b"beta.example", text)
        acme.rset()
        # The envelope is acme's, the From: header beta's: refused after DATA, nothing spooled.
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            acme.sendmail("news@acme.example", ["x@example.org"], campaign("news@beta.example"))
        self.assertEqual(refused.exception.smtp_code, 550)
        self.assertIn(b"beta.example", refused.exception.smtp_error)
        # A display name that hides another domain is no way around it.
        with self.assertRaises(smtplib.SMTPDataError):
            acme.sendmail("news@acme.example", ["x@example.org"],
                          campaign("news@acme.example").replace(b"From: News", b"From: boss@beta.example"))
        self.assertEqual(self.relay.spool_ids(), [])
        self.assertEqual(self.relay.outbox_files(), [])
        # Subdomains are the tenant's own.
        acme.sendmail("news@mail.acme.example", ["x@example.org"], campaign("news@mail.acme.example"))
        beta = self.smtp(source="127.0.0.2")
        code, text = beta.mail("news@acme.example")
        self.assertEqual(code, 550)
        beta.rset()
        beta.sendmail("news@beta.example", ["y@example.org"], campaign("news@beta.example"))
        self.assertEqual(len(self.delivered(2)), 2)
        # 127.0.0.1 is trusted (allow_networks) but no tenant's, and there is no default_tenant.
        nobody = self.smtp()
        code, text = nobody.mail("news@example.com")
        self.assertEqual((code, text), (550, b"5.7.1 Error: no tenant for this client"))

    def test_each_tenants_copies_carry_its_links_keys_and_ses_fields(self):
        self.smtp("acme-app").sendmail("news@acme.example", ["pat@example.org"], campaign("news@acme.example"))
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["pat@example.org"],
                                               campaign("news@beta.example"))
        copies = {m["From"].addresses[0].domain: m for m in self.delivered(2)}
        acme, beta = copies["acme.example"], copies["beta.example"]
        self.assertTrue(self.link(acme).startswith("https://unsub.acme.example/u/"))
        self.assertTrue(self.link(beta).startswith("https://unsub.beta.example/u/"))
        self.assertEqual(acme["X-SES-CONFIGURATION-SET"], "acme-marketing")
        self.assertEqual(acme["X-SES-TENANT"], "acme")
        self.assertIsNone(beta["X-SES-TENANT"])
        # The same address is two contacts with two uids.
        self.assertNotEqual(acme["List-Unsubscribe"], beta["List-Unsubscribe"])
        uids = self.uids("pat@example.org")
        self.assertEqual(set(uids), {"acme", "beta"})
        self.assertNotEqual(uids["acme"], uids["beta"])

    def test_an_opt_out_at_one_tenant_leaves_the_other_alone(self):
        self.smtp("acme-app").sendmail("news@acme.example", ["sam@example.org"], campaign("news@acme.example"))
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["sam@example.org"],
                                               campaign("news@beta.example"))
        copies = {m["From"].addresses[0].domain: m for m in self.delivered(2)}
        url = self.link(copies["acme.example"])
        code, _, body = self.relay.http("POST", url.replace("https://unsub.acme.example", ""),
                                        "List-Unsubscribe=One-Click",
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 200, body)
        # A token of acme's means nothing at beta: beta's URL with acme's token is not beta's.
        token = url.rsplit("/", 1)[1]
        self.smtp("acme-app").sendmail("news@acme.example", ["sam@example.org"],
                                       campaign("news@acme.example", launch="502"))
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["sam@example.org"],
                                               campaign("news@beta.example", launch="502"))
        wait_until(lambda: "status=suppressed" in self.relay.read_log(), what="acme's second copy suppressed")
        later = self.delivered(3)
        self.assertEqual(len(later), 3)
        self.assertEqual(sorted(m["From"].addresses[0].domain for m in later),
                         ["acme.example", "beta.example", "beta.example"])
        self.assertTrue(token)


class SqliteTenantsTest(TenantsBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}

    def uids(self, address):
        out = {}
        for tenant, name in (("default", "unsubrelay.db"), ("acme", "unsubrelay.tenant-acme.db"),
                             ("beta", "unsubrelay.tenant-beta.db")):
            path = os.path.join(self.relay.dir, "var", name)
            with sqlite3.connect(path) as db:
                for (uid,) in db.execute("SELECT uid FROM contacts WHERE address = ?", (address,)):
                    out[tenant] = uid
        return out


class PostgresTenantsTest(TenantsBase, unittest.TestCase):
    def store_settings(self):
        self.server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(self.server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "tenants_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", self.server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        self.url = self.server.rsplit("/", 1)[0] + "/" + self.database
        return {"kind": "postgresql", "url": self.url}

    def uids(self, address):
        out = {}
        for tenant, schema in (("default", "public"), ("acme", "unsubrelay_tenant_acme"),
                               ("beta", "unsubrelay_tenant_beta")):
            rows = subprocess.run(["psql", self.url, "-qAt", "-c",
                                   f"SELECT uid FROM {schema}.contacts WHERE address = '{address}'"],
                                  check=True, capture_output=True, text=True).stdout.split()
            if rows:
                out[tenant] = rows[0]
        return out


if __name__ == "__main__":
    unittest.main()
