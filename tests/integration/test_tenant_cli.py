"""The command line per tenant (SPEC Part 3, issue 24): `stats`, `export`,
`contact`, `suppression` and `token` take `--tenant ID` and work on that
tenant's own store and keys only; an unknown tenant is a usage error (64).
The relay of test_tenants.py: acme submits by AUTH, beta from 127.0.0.2."""

import csv
import io
import json
import os
import subprocess
import unittest
import uuid

from relay import BIN, Relay, wait_until
from test_tenants import TenantsBase, campaign

USAGE = 64


class TenantCliBase(TenantsBase):
    # Only TenantsBase's set-up is shared: test_tenants.py's tests are in TenantsTests.

    def cli(self, *args, status=0):
        result = self.relay.cli(*args)
        if status is not None:
            self.assertEqual(result.returncode, status, f"{args}: {result.stdout}{result.stderr}")
        return result

    def mail_both(self, rcpts, launch="501"):
        """One campaign copy per address from acme and from beta; their delivered copies by tenant."""
        before = len(self.relay.outbox_files())
        self.smtp("acme-app").sendmail("news@acme.example", rcpts, campaign("news@acme.example", launch=launch))
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", rcpts,
                                               campaign("news@beta.example", launch=launch))
        copies = {"acme": [], "beta": []}
        for m in self.delivered(before + 2 * len(rcpts))[before:]:
            copies[m["From"].addresses[0].domain.split(".")[0]].append(m)
        return copies

    def contact(self, address, tenant):
        return json.loads(self.cli("contact", "show", address, "--tenant", tenant).stdout)

    def one_click(self, url):
        code, _, body = self.relay.http("POST", "/" + url.split("/", 3)[3], "List-Unsubscribe=One-Click",
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 200, body)

    def test_contact_show_is_the_tenants_own_contact(self):
        copies = self.mail_both(["pat@example.org"])
        acme = self.contact("pat@example.org", "acme")
        beta = self.contact("pat@example.org", "beta")
        self.assertNotEqual(acme["contact"]["uid"], beta["contact"]["uid"])
        self.assertEqual(self.uids("pat@example.org"), {"acme": acme["contact"]["uid"], "beta": beta["contact"]["uid"]})
        # Each shows its own copy only.
        self.assertEqual([s["email_id"] for s in acme["sends"]], ["500"])
        self.assertEqual(len(beta["sends"]), 1)
        # Without --tenant: default, which holds nothing about pat.
        nothing = self.cli("contact", "show", "pat@example.org", status=1)
        self.assertIn("nothing is held about pat@example.org", nothing.stderr)
        # token verify finds the tenant from the key id; --tenant checks with that tenant's keys only.
        link = self.link(copies["acme"][0])
        verified = self.cli("token", "verify", link).stdout
        self.assertIn(f"uid: {acme['contact']['uid']}\n", verified)
        self.assertIn("key: acme1\ntenant: acme\n", verified)
        self.assertIn("tenant: acme", self.cli("token", "verify", link, "--tenant", "acme").stdout)
        wrong = self.cli("token", "verify", link, "--tenant", "beta", status=1)
        self.assertEqual(wrong.stdout, "invalid: token signed with an unknown key (tenant beta)\n")
        # token sign --tenant: that tenant's keys, base URL and contact.
        signed = self.cli("token", "sign", "--recipient", "pat@example.org", "--campaign", "9", "--launch", "9",
                          "--tenant", "beta").stdout.strip()
        self.assertTrue(signed.startswith("https://unsub.beta.example/u/"), signed)
        again = self.cli("token", "verify", signed).stdout
        self.assertIn(f"uid: {beta['contact']['uid']}\n", again)
        self.assertIn("tenant: beta\n", again)

    def test_suppression_add_suppresses_only_that_tenants_copies(self):
        added = self.cli("suppression", "add", "sam@example.org", "--tenant", "acme")
        self.assertEqual(added.stdout, "suppressed sam@example.org\n")
        listed = self.cli("suppression", "list", "--tenant", "acme").stdout.splitlines()
        self.assertEqual([json.loads(line)["address"] for line in listed], ["sam@example.org"])
        self.assertEqual(self.cli("suppression", "list", "--tenant", "beta").stdout, "")
        self.assertEqual(self.cli("suppression", "list").stdout, "")
        self.smtp("acme-app").sendmail("news@acme.example", ["sam@example.org"], campaign("news@acme.example"))
        self.smtp(source="127.0.0.2").sendmail("news@beta.example", ["sam@example.org"],
                                               campaign("news@beta.example"))
        wait_until(lambda: "status=suppressed" in self.relay.read_log(), what="acme's copy suppressed")
        wait_until(lambda: not self.relay.spool_ids(), what="an empty spool")
        delivered = self.delivered(1)
        self.assertEqual(len(self.relay.outbox_files()), 1)
        self.assertEqual(delivered[0]["From"].addresses[0].domain, "beta.example")
        # Lifted at acme, imported at beta: each list changes alone.
        self.assertIn("lifted 1 entry", self.cli("suppression", "remove", "sam@example.org", "--tenant", "acme").stdout)
        path = os.path.join(self.relay.dir, "list.csv")
        with open(path, "w") as f:
            f.write("email\nsam@example.org\nkim@example.org\n")
        self.assertIn("2 rows imported", self.cli("suppression", "import", path, "--tenant", "beta").stdout)
        self.assertEqual(self.cli("suppression", "list", "--tenant", "acme").stdout, "")
        self.assertEqual(len(self.cli("suppression", "list", "--tenant", "beta").stdout.splitlines()), 2)

    def stats(self, tenant):
        """{launch_list_id: (sent, delivered, unsubscribed)} from `stats --tenant`."""
        lines = self.cli("stats", "--tenant", tenant).stdout.splitlines()
        self.assertTrue(lines[0].startswith("email_id"), lines)
        return {f[1]: (int(f[3]), int(f[4]), int(f[8])) for f in (line.split() for line in lines[1:])}

    def test_stats_and_export_show_the_tenants_own(self):
        self.mail_both(["ann@example.org", "bob@example.org"], launch="601")
        self.smtp("acme-app").sendmail("news@acme.example", ["cid@example.org"],
                                       campaign("news@acme.example", launch="602"))
        self.delivered(5)
        wait_until(lambda: self.stats("acme") == {"601": (2, 2, 0), "602": (1, 1, 0)},
                   what="acme's stats: launches 601 and 602 delivered")
        self.assertEqual(self.stats("beta"), {"601": (2, 2, 0)})
        self.assertEqual(self.stats("default"), {})
        # One opt-out at each: ann at acme, bob at beta.
        for tenant, address in (("acme", "ann@example.org"), ("beta", "bob@example.org")):
            self.one_click(self.cli("token", "sign", "--recipient", address, "--campaign", "500", "--launch", "601",
                                    "--tenant", tenant).stdout.strip())
        self.assertEqual(self.stats("acme")["601"], (2, 2, 1))
        self.assertEqual(self.stats("beta")["601"], (2, 2, 1))
        events = [json.loads(line) for line in self.cli("export", "--tenant", "acme").stdout.splitlines()]
        self.assertEqual([(e["email"], e["action"]) for e in events], [("ann@example.org", "unsubscribe")])
        rows = list(csv.DictReader(io.StringIO(self.cli("export", "--tenant", "beta", "--format", "csv").stdout)))
        self.assertEqual([(r["email"], r["action"]) for r in rows], [("bob@example.org", "unsubscribe")])
        self.assertEqual(self.cli("export").stdout, "")

    def test_contact_erase_at_one_tenant_leaves_the_other(self):
        self.mail_both(["eve@example.org"])
        erased = json.loads(self.cli("contact", "erase", "eve@example.org", "--tenant", "acme").stdout)
        self.assertEqual(erased["address"], "eve@example.org")
        self.cli("contact", "show", "eve@example.org", "--tenant", "acme", status=1)
        beta = self.contact("eve@example.org", "beta")
        self.assertEqual(len(beta["sends"]), 1)
        self.assertEqual(set(self.uids("eve@example.org")), {"beta"})

    def test_an_unknown_tenant_is_a_usage_error_naming_the_known_ones(self):
        for args in (("stats",), ("export",), ("contact", "show", "x@example.org"), ("suppression", "list"),
                     ("suppression", "add", "x@example.org"), ("token", "verify", "abc"),
                     ("token", "sign", "--recipient", "x@example.org")):
            result = self.cli(*args, "--tenant", "gamma", status=USAGE)
            self.assertIn("no tenant 'gamma' (tenants: default, acme, beta, delta)", result.stderr, args)
            self.assertEqual(result.stdout, "")
        # Nothing was written for gamma: no store of its own appeared.
        self.assertFalse(any("gamma" in name for name in os.listdir(os.path.join(self.relay.dir, "var"))))
        # The spool is the installation's: queue commands take no --tenant.
        queue = self.cli("queue", "list", "--tenant", "acme", status=USAGE)
        self.assertIn("--tenant is not an option of this command", queue.stderr)


class SqliteTenantCliTest(TenantCliBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}

    uids = __import__("test_tenants").SqliteTenantsTest.uids


class PostgresTenantCliTest(TenantCliBase, unittest.TestCase):
    def store_settings(self):
        self.server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(self.server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "tenant_cli_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", self.server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        self.url = self.server.rsplit("/", 1)[0] + "/" + self.database
        return {"kind": "postgresql", "url": self.url}

    uids = __import__("test_tenants").PostgresTenantsTest.uids


class NoTenantsCliTest(unittest.TestCase):
    """Without tenants: configured: only --tenant default exists."""

    def test_only_default_is_accepted(self):
        relay = Relay(extra={"store": {"kind": "sqlite", "path": "var/unsubrelay.db"}})
        os.makedirs(os.path.join(relay.dir, "var"), exist_ok=True)
        self.assertEqual(relay.cli("suppression", "add", "x@example.org", "--tenant", "default").returncode, 0)
        listed = relay.cli("suppression", "list", "--tenant", "default")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual(json.loads(listed.stdout)["address"], "x@example.org")
        for args in (("stats",), ("suppression", "list"), ("contact", "show", "x@example.org")):
            result = relay.cli(*args, "--tenant", "acme")
            self.assertEqual(result.returncode, USAGE, result.stderr)
            self.assertIn("no tenant 'acme': no tenants are configured (only --tenant default)", result.stderr)


class DeclaredDefaultCliTest(unittest.TestCase):
    """default declared in tenants: (with its own networks) is still the top level's store and keys."""

    def test_default_and_acme_stores_apart(self):
        relay = Relay(extra={"store": {"kind": "sqlite", "path": "var/unsubrelay.db"}})
        d = relay.dir
        os.makedirs(os.path.join(d, "var"), exist_ok=True)
        for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml")):
            made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(d, name)], capture_output=True,
                                  text=True)
            self.assertEqual(made.returncode, 0, made.stderr)
        relay.extra["unsubscribe"] = {"keys_file": os.path.join(d, "top-keys.yaml"),
                                      "base_url": "https://unsub.example.com"}
        relay.extra["tenants"] = [
            {"id": "default", "networks": ["127.0.0.3/32"]},
            {"id": "acme", "networks": ["127.0.0.2/32"], "sender_domains": ["acme.example"],
             "keys_file": os.path.join(d, "acme-keys.yaml")}]
        relay.write_config()

        def cli(*args, status=0):
            result = relay.cli(*args)
            self.assertEqual(result.returncode, status, f"{args}: {result.stdout}{result.stderr}")
            return result.stdout

        cli("suppression", "add", "x@example.org", "--tenant", "acme")
        cli("suppression", "add", "y@example.org")
        self.assertEqual([json.loads(line)["address"] for line in cli("suppression", "list").splitlines()],
                         ["y@example.org"])
        self.assertEqual([json.loads(line)["address"] for line in
                          cli("suppression", "list", "--tenant", "default").splitlines()], ["y@example.org"])
        self.assertEqual([json.loads(line)["address"] for line in
                          cli("suppression", "list", "--tenant", "acme").splitlines()], ["x@example.org"])
        self.assertTrue(os.path.exists(os.path.join(d, "var", "unsubrelay.tenant-acme.db")))
        signed = cli("token", "sign", "--recipient", "y@example.org", "--tenant", "default").strip()
        self.assertTrue(signed.startswith("https://unsub.example.com/u/"), signed)
        self.assertIn("key: top1\ntenant: default\n", cli("token", "verify", signed))
        cli("token", "verify", signed, "--tenant", "acme", status=1)


if __name__ == "__main__":
    unittest.main()
