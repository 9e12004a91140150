"""Tenants on the real relay (SPEC Part 3, issue 24): which tenant a client
submits as, the domains it may send as, each tenant's own links, keys, SES
fields and data, on SQLite and on PostgreSQL (scripts/test-postgres.sh)."""

import email
import email.policy
import json
import os
import re
import smtplib
import sqlite3
import subprocess
import unittest
import uuid

from relay import BIN, REPO, Relay, make_users_file, start_webhook_receiver, wait_until

PASSWORDS = {"acme-app": "acme-secret", "beta-app": "beta-secret"}
KEYS = {"admin": "admin-key-0123456789", "acme": "acme-key-0123456789", "beta": "beta-key-0123456789"}


def campaign(sender, email_id="500", launch="501", body="Leave: *|UNSUBSCRIBE|*", extra=""):
    return (f"From: News <{sender}>\r\nTo: list@example.org\r\nSubject: news\r\nX-Campaign-Id: {email_id}\r\n"
            f"X-Launch-List-Id: {launch}\r\n{extra}\r\n{body}\r\n").encode()


class TenantClient:
    """What a test of a relay with tenants does: stop it checking its exit status, and
    talk SMTP as a tenant (AUTH as one of PASSWORDS, or from a source address)."""

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


class TenantsBase(TenantClient):
    """acme submits by AUTH, beta from 127.0.0.2 (its network); 127.0.0.1 is trusted but nobody's;
    127.0.0.3 is a stranger (bounces come from there). Each has its API keys, acme its own VERP
    domain and webhook."""

    def store_settings(self):
        raise NotImplementedError

    def setUp(self):
        self.relay = Relay(extra={"store": self.store_settings()})
        d = self.relay.dir
        for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml"), ("beta1", "beta-keys.yaml"),
                             ("delta1", "delta-keys.yaml")):
            made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(d, name)], capture_output=True,
                                  text=True)
            self.assertEqual(made.returncode, 0, made.stderr)
        users = make_users_file(d, PASSWORDS)
        with open(os.path.join(REPO, "conf", "unsubscribe.html")) as f:
            page = f.read()
        with open(os.path.join(d, "acme-page.html"), "w") as f:
            f.write(page.replace("<body>", "<body><p>Acme Corp preferences</p>", 1))
        self.relay.smtp.update({"auth": {"users_file": users, "require_tls": False},
                                "allow_networks": ["127.0.0.1/32", "127.0.0.2/32", "127.0.0.4/32"]})
        self.relay.extra["unsubscribe"] = {"keys_file": os.path.join(d, "top-keys.yaml"),
                                           "base_url": "https://unsub.example.com"}
        for name, key in KEYS.items():
            with open(os.path.join(d, name + "-api-keys"), "w") as f:
                f.write(key + "\n")
        with open(os.path.join(d, "hook-secret"), "w") as f:
            f.write("s3cret-for-webhooks-0123456789\n")
        self.hooks = {}
        for name in ("default", "acme"):
            port, bodies = start_webhook_receiver(self)
            self.hooks[name] = bodies
            self.hooks[name + "_url"] = f"http://127.0.0.1:{port}/hook"
        self.relay.extra["http"]["api_keys_file"] = os.path.join(d, "admin-api-keys")
        self.relay.extra["feedback"] = {"return_path_domain": "bounces.example.com"}
        self.relay.extra["webhooks"] = [{"url": self.hooks["default_url"], "secret_file": os.path.join(d, "hook-secret")}]
        self.relay.extra["tenants"] = [
            {"id": "acme", "smtp_users": ["acme-app"], "sender_domains": ["acme.example"],
             "keys_file": os.path.join(d, "acme-keys.yaml"),
             "api_keys_file": os.path.join(d, "acme-api-keys"),
             "unsubscribe": {"base_url": "https://unsub.acme.example", "body_link": "reject",
                             "page_template": os.path.join(d, "acme-page.html")},
             "feedback": {"return_path_domain": "bounces.acme.example"},
             "webhooks": [{"url": self.hooks["acme_url"], "secret_file": os.path.join(d, "hook-secret")}],
             "ses": {"configuration_set": "acme-marketing", "tenant": "acme"}},
            {"id": "beta", "networks": ["127.0.0.2/32"], "sender_domains": ["beta.example"],
             "keys_file": os.path.join(d, "beta-keys.yaml"),
             "api_keys_file": os.path.join(d, "beta-api-keys"),
             "suppression": "shared",
             "unsubscribe": {"base_url": "https://unsub.beta.example"}},
            {"id": "delta", "networks": ["127.0.0.4/32"], "sender_domains": ["delta.example"],
             "keys_file": os.path.join(d, "delta-keys.yaml"), "upstream": {"directory": "var/delta-outbox"}},
        ]
        self.relay.write_config()
        self.relay.start()
        self.addCleanup(self.stop_relay)

    def delivered(self, count):
        out = []
        for path in self.relay.wait_for_outbox(count):
            with open(path, "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def link(self, msg):
        return re.match(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)



class TenantsTests(TenantsBase):
    """The tests of this file; test_tenant_cli.py shares TenantsBase's set-up only."""

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
        # 127.0.0.1 is trusted (allow_networks) but no tenant's, and there is no default_tenant:
        # it may bring bounces to the feedback addresses, but relays nothing.
        nobody = self.smtp()
        self.assertEqual(nobody.mail("news@example.com")[0], 250)
        code, text = nobody.rcpt("x@example.org")
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
        # acme's landing page is its own page_template; beta's the installation's.
        pages = {}
        for name, msg, host in (("acme", acme, "https://unsub.acme.example"), ("beta", beta, "https://unsub.beta.example")):
            code, _, pages[name] = self.relay.http("GET", self.link(msg).replace(host, ""))
            self.assertEqual(code, 200, pages[name])
        self.assertIn(b"Acme Corp preferences", pages["acme"])
        self.assertNotIn(b"Acme Corp preferences", pages["beta"])
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


    def api(self, method, path, key, body=None):
        headers = {"Authorization": "Bearer " + KEYS[key]}
        if body is not None:
            headers["Content-Type"] = "application/json"
        code, _, data = self.relay.http(method, path, json.dumps(body) if body is not None else None, headers)
        return code, (json.loads(data) if data.startswith(b"{") or data.startswith(b"[") else data)

    def mail_both(self, address, launch="501"):
        self.smtp("acme-app").sendmail("news@acme.example", [address], campaign("news@acme.example", launch=launch))
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", [address],
                                               campaign("news@beta.example", launch=launch))

    def test_api_keys_see_and_change_their_own_tenant_only(self):
        self.mail_both("kim@example.org")
        self.smtp("acme-app").sendmail("news@acme.example", ["only-acme@example.org"], campaign("news@acme.example"))
        self.delivered(3)
        uids = self.uids("kim@example.org")
        code, acme = self.api("GET", "/api/v1/contacts/kim@example.org", "acme")
        self.assertEqual(code, 200, acme)
        self.assertEqual(acme["contact"]["uid"], uids["acme"])
        code, beta = self.api("GET", "/api/v1/contacts/kim@example.org", "beta")
        self.assertEqual((code, beta["contact"]["uid"]), (200, uids["beta"]))
        # Another tenant's address, or this tenant's key naming another tenant: 404, never 403.
        self.assertEqual(self.api("GET", "/api/v1/contacts/only-acme@example.org", "beta")[0], 404)
        self.assertEqual(self.api("GET", "/api/v1/contacts/kim@example.org?tenant=beta", "acme")[0], 404)
        # An admin key must name the tenant.
        code, body = self.api("GET", "/api/v1/contacts/kim@example.org", "admin")
        self.assertEqual(code, 400, body)
        self.assertIn("tenant", body["error"])
        code, body = self.api("GET", "/api/v1/contacts/kim@example.org?tenant=beta", "admin")
        self.assertEqual((code, body["contact"]["uid"]), (200, uids["beta"]))
        self.assertEqual(self.api("GET", "/api/v1/contacts/kim@example.org?tenant=nope", "admin")[0], 404)
        # A suppression acme files stops acme's mail, not beta's.
        code, body = self.api("PUT", "/api/v1/suppressions/kim@example.org", "acme", {"reason": "manual"})
        self.assertIn(code, (200, 201), body)
        self.assertEqual(self.api("GET", "/api/v1/suppressions?address=kim@example.org", "beta")[1]["suppressions"], [])
        self.mail_both("kim@example.org", launch="502")
        wait_until(lambda: "status=suppressed" in self.relay.read_log(), what="acme's copy suppressed")
        later = self.delivered(4)
        self.assertEqual(sorted(m["From"].addresses[0].domain for m in later).count("beta.example"), 2)

    def test_a_tenants_own_body_link_is_checked_before_the_250(self):
        # acme: body_link reject; beta: the top level's footer. The same campaign without a placeholder:
        without = campaign("news@acme.example", body="No link here.")
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            self.smtp("acme-app").sendmail("news@acme.example", ["x@example.org"], without)
        self.assertEqual(refused.exception.smtp_code, 550)
        self.assertEqual(self.relay.spool_ids(), [])
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["x@example.org"],
                                               without.replace(b"acme.example", b"beta.example"))
        self.assertEqual(len(self.delivered(1)), 1)

    def test_a_tenant_with_its_own_upstream_goes_out_through_it(self):
        self.smtp(source="127.0.0.4").sendmail("news@delta.example", ["ann@example.org"],
                                               campaign("news@delta.example"))
        own = os.path.join(self.relay.dir, "var", "delta-outbox")
        wait_until(lambda: os.path.isdir(own) and [f for f in os.listdir(own) if f.endswith(".eml")],
                   what="delta's copy in its own upstream")
        self.assertEqual(self.relay.outbox_files(), [])

    def test_the_shared_list_stops_only_the_tenants_that_chose_it(self):
        # Only an admin key files entries for all tenants (?tenant=*), and only beta (suppression: shared) honours them.
        self.assertEqual(self.api("PUT", "/api/v1/suppressions/all@example.org?tenant=*", "acme",
                                  {"reason": "manual"})[0], 404)
        code, body = self.api("PUT", "/api/v1/suppressions/all@example.org?tenant=*", "admin", {"reason": "manual"})
        self.assertIn(code, (200, 201), body)
        code, body = self.api("GET", "/api/v1/suppressions?address=all@example.org&tenant=*", "admin")
        self.assertEqual([e["reason"] for e in body["suppressions"]], ["manual"], body)
        self.mail_both("all@example.org")
        wait_until(lambda: "status=suppressed (manual" in self.relay.read_log(), what="beta's copy suppressed")
        self.assertIn("(shared list)", self.relay.read_log())
        copies = self.delivered(1)
        self.assertEqual([m["From"].addresses[0].domain for m in copies], ["acme.example"])
        # The command line reaches the shared list as --tenant '*'.
        listed = self.relay.cli("suppression", "list", "--tenant", "*")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("all@example.org", listed.stdout)
        self.assertNotIn("all@example.org", self.relay.cli("suppression", "list", "--tenant", "beta").stdout)

    def test_bounces_and_webhooks_stay_in_their_tenant(self):
        self.mail_both("gone@example.org")
        acme = next(m for m in self.delivered(2) if m["From"].addresses[0].domain == "acme.example")
        verp = re.match(r"<(b\+[A-Za-z0-9_-]+@bounces\.acme\.example)>", acme["Return-Path"])
        self.assertTrue(verp, acme["Return-Path"])
        bounce = (b"From: MAILER-DAEMON@mx.example.org\r\nTo: x\r\nSubject: failed\r\nMIME-Version: 1.0\r\n"
                  b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
                  b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
                  b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n")
        stranger = self.smtp(source="127.0.0.3")
        stranger.sendmail("", [verp.group(1)], bounce)
        wait_until(lambda: "hard_bounce recorded" in self.relay.read_log(), what="the bounce recorded")
        code, body = self.api("GET", "/api/v1/suppressions?address=gone@example.org", "acme")
        self.assertEqual([e["reason"] for e in body["suppressions"]], ["hard_bounce"], body)
        self.assertEqual(self.api("GET", "/api/v1/suppressions?address=gone@example.org", "beta")[1]["suppressions"],
                         [])
        # Counted as acme's; each tenant has its own complaint rate.
        metrics = self.relay.http("GET", "/metrics")[2].decode()
        self.assertIn('unsubrelay_feedback_total{tenant="acme",kind="hard_bounce",source="dsn"} 1\n', metrics)
        self.assertNotIn('tenant="beta",kind="hard_bounce"', metrics)
        for tenant in ("default", "acme", "beta"):
            self.assertIn(f'unsubrelay_complaint_rate{{tenant="{tenant}"}} 0\n', metrics)
        # An opt-out at acme reaches acme's webhook, never the default's.
        code, _, _ = self.relay.http("POST", self.link(acme).replace("https://unsub.acme.example", ""),
                                     "List-Unsubscribe=One-Click",
                                     {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 200)
        wait_until(lambda: self.hooks["acme"], what="acme's webhook called")
        self.assertIn(b"unsubscribe", self.hooks["acme"][0])
        self.assertEqual(self.hooks["default"], [])

    def test_metrics_carry_the_tenant(self):
        self.mail_both("lee@example.org")
        self.delivered(2)
        code, _, body = self.relay.http("GET", "/metrics")
        self.assertEqual(code, 200)
        text = body.decode()
        for tenant in ("acme", "beta"):
            self.assertIn(f'unsubrelay_messages_received_total{{tenant="{tenant}"}} 1\n', text)
            wait_until(lambda: f'unsubrelay_delivered_total{{tenant="{tenant}"}} 1\n' in
                       self.relay.http("GET", "/metrics")[2].decode(), what=f"{tenant}'s delivery counted")
        self.assertIn('unsubrelay_messages_received_total{tenant="default"} 0\n', text)
        # An opt-out at acme counts as acme's.
        acme = next(m for m in self.delivered(2) if m["From"].addresses[0].domain == "acme.example")
        self.relay.http("POST", self.link(acme).replace("https://unsub.acme.example", ""), "List-Unsubscribe=One-Click",
                        {"Content-Type": "application/x-www-form-urlencoded"})
        text = self.relay.http("GET", "/metrics")[2].decode()
        self.assertIn('unsubrelay_unsubscribes_total{tenant="acme",source="one-click"} 1\n', text)
        self.assertIn('unsubrelay_unsubscribes_total{tenant="beta",source="one-click"} 0\n', text)


class MigrationBase:
    """An installation's data from before tenants is the tenant default's: its contacts, and its
    links already out in people's mailboxes, keep working; a new tenant sees none of it."""

    def test_data_from_before_tenants_is_defaults(self):
        relay = Relay(extra={"store": self.store_settings()})
        d = relay.dir
        for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml")):
            made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(d, name)], capture_output=True,
                                  text=True)
            self.assertEqual(made.returncode, 0, made.stderr)
        for name, key in KEYS.items():
            with open(os.path.join(d, name + "-api-keys"), "w") as f:
                f.write(key + "\n")
        relay.extra["unsubscribe"] = {"keys_file": os.path.join(d, "top-keys.yaml"),
                                      "base_url": "https://unsub.example.com"}
        relay.extra["http"]["api_keys_file"] = os.path.join(d, "admin-api-keys")
        relay.write_config()
        with relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["old@example.org"], campaign("news@example.com"))
            path = relay.wait_for_outbox(1)[0]
        with open(path, "rb") as f:
            old = email.message_from_bytes(f.read(), policy=email.policy.default)
        url = re.match(r"<(https://[^>]+)>", old["List-Unsubscribe"]).group(1)
        relay.extra["tenants"] = [{"id": "acme", "networks": ["127.0.0.2/32"], "sender_domains": ["acme.example"],
                                   "keys_file": os.path.join(d, "acme-keys.yaml"),
                                   "api_keys_file": os.path.join(d, "acme-api-keys")}]
        relay.smtp["default_tenant"] = "default"
        relay.write_config()
        with relay:
            admin = {"Authorization": "Bearer " + KEYS["admin"]}
            code, _, body = relay.http("GET", "/api/v1/contacts/old@example.org?tenant=default", None, admin)
            self.assertEqual(code, 200, body)
            code, _, _ = relay.http("GET", "/api/v1/contacts/old@example.org", None,
                                    {"Authorization": "Bearer " + KEYS["acme"]})
            self.assertEqual(code, 404)
            # The link in the old copy still unsubscribes, at default.
            code, _, body = relay.http("POST", url.replace("https://unsub.example.com", ""),
                                       "List-Unsubscribe=One-Click",
                                       {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(code, 200, body)
            code, _, body = relay.http("GET", "/api/v1/suppressions?address=old@example.org&tenant=default", None,
                                       admin)
            self.assertEqual([e["reason"] for e in json.loads(body)["suppressions"]], ["unsubscribe"])
            # And the old client, now the default tenant's by smtp.default_tenant, still sends.
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["new@example.org"], campaign("news@example.com", launch="777"))
            relay.wait_for_outbox(2)


class SqliteMigrationTest(MigrationBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}


class PostgresMigrationTest(MigrationBase, unittest.TestCase):
    def store_settings(self):
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        database = "tenants_mig_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
        return {"kind": "postgresql", "url": server.rsplit("/", 1)[0] + "/" + database}


class SqliteTenantsTest(TenantsTests, unittest.TestCase):
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


class PostgresTenantsTest(TenantsTests, unittest.TestCase):
    def test_a_fleet_keeps_tenants_apart(self):
        """Two relays on one database: an opt-out taken by one relay stops that tenant's next
        copy sent by the other, and no other tenant's."""
        http = {"api_keys_file": self.relay.extra["http"]["api_keys_file"]}
        smtp = {k: v for k, v in self.relay.smtp.items() if k != "listen"}
        second = Relay(smtp=smtp, extra={**{k: v for k, v in self.relay.extra.items() if k != "http"}, "http": http})
        self.smtp("acme-app").sendmail("news@acme.example", ["fleet@example.org"], campaign("news@acme.example"))
        acme = self.delivered(1)[0]
        with second:
            code, _, body = second.http("POST", self.link(acme).replace("https://unsub.acme.example", ""),
                                        "List-Unsubscribe=One-Click",
                                        {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(code, 200, body)
            for user, source, sender in ((None, "127.0.0.2", "news@beta.example"),
                                         ("acme-app", "127.0.0.1", "news@acme.example")):
                with smtplib.SMTP("127.0.0.1", second.port, timeout=30, source_address=(source, 0)) as s:
                    if user:
                        s.login(user, PASSWORDS[user])
                    s.sendmail(sender, ["fleet@example.org"], campaign(sender, launch="503"))
            wait_until(lambda: "status=suppressed" in second.read_log(), what="acme's copy suppressed by the second relay")
            copies = second.wait_for_outbox(1)
            self.assertEqual(len(copies), 1)
            with open(copies[0], "rb") as f:
                self.assertIn(b"From: News <news@beta.example>", f.read())

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
