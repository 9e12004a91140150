"""Personal data (issue 13, point 6) with the real binary, on the embedded
SQLite store and on PostgreSQL (scripts/test-postgres.sh): a campaign copy
sent through the relay (smtplib), a one-click unsubscribe over HTTP with a
distinctive User-Agent, then GET /api/v1/contacts/ADDRESS shows it all,
DELETE erases it, later mail to the address is still suppressed, and neither
the address nor the user agent is left anywhere in the database files."""

import glob
import json
import os
import re
import smtplib
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from relay import Relay, start_webhook_receiver, wait_until

API_KEY = "contacts-test-key-0123456789abcdef"
AUTH = {"Authorization": "Bearer " + API_KEY}


def campaign(email_id, launch):
    return (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n"
            f"\r\nLeave: *|UNSUBSCRIBE|*\r\n").encode()


class ContactsBase:
    """The tests; a subclass picks the store and says where its bytes are."""

    def store_settings(self):
        raise NotImplementedError

    def database_files(self):
        raise NotImplementedError

    def flush(self):
        """Writes what the server holds in memory to the files searched (PostgreSQL's buffers)."""

    def setUp(self):
        keys = tempfile.mkdtemp(prefix="unsubrelay-contacts-")
        api_keys = os.path.join(keys, "api-keys")
        with open(api_keys, "w") as f:
            f.write(API_KEY + "\n")
        secret = os.path.join(keys, "webhook-secret")
        with open(secret, "w") as f:
            f.write("contacts-secret\n")
        webhook_port, self.posted = start_webhook_receiver(self)  # raw webhook bodies
        self.relay = Relay(extra={
            "http": {"api_keys_file": api_keys, "requests_per_minute": 100000},
            "unsubscribe": {"base_url": "https://u.example"},
            "store": self.store_settings(),
            "webhooks": [{"url": f"http://127.0.0.1:{webhook_port}/events", "secret_file": secret}],
        }).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def api(self, method, path, headers=None):
        code, _, data = self.relay.http(method, path, None, {**AUTH, **(headers or {})})
        return code, json.loads(data)

    def send(self, recipients, email_id):
        """One campaign; waits until every copy is delivered or suppressed. Returns the new outbox files."""
        before = set(self.relay.outbox_files())
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.sendmail("news@example.com", recipients, campaign(email_id, "L-" + uuid.uuid4().hex[:8]))
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        return sorted(set(self.relay.outbox_files()) - before)

    def copy_for(self, files, address):
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            if re.search(rb"^Delivered-To: " + re.escape(address.encode()) + rb"\r\n", data, re.M):
                return data
        self.fail(f"no copy for {address}")

    def held_bytes(self, *needles):
        """The database files (and which needle) that still hold any of the needles."""
        self.flush()
        found = []
        for path in self.database_files():
            with open(path, "rb") as f:
                data = f.read()
            found += [(path, n) for n in needles if n.encode() in data or n.lower().encode() in data]
        return found

    def test_show_erase_stay_suppressed_and_no_bytes_left(self):
        address = f"Erase-{uuid.uuid4().hex[:10]}@Example.org"
        lower = address.lower()
        agent = f"ErasureProbe/{uuid.uuid4().hex}"
        files = self.send([address, "keep@example.org"], "700")
        link = re.search(rb"List-Unsubscribe: <https://u.example(/u/[A-Za-z0-9_-]+)>",
                         self.copy_for(files, address)).group(1).decode()
        code, _, body = self.relay.http("POST", link, "List-Unsubscribe=One-Click",
                                        {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": agent})
        self.assertEqual((code, body), (200, b"unsubscribed\n"))

        # The API key is required for both routes: 401 and nothing changed.
        for method in ("GET", "DELETE"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                self.assertEqual(self.relay.http(method, "/api/v1/contacts/" + address, None, headers)[0], 401)

        code, shown = self.api("GET", "/api/v1/contacts/" + address)
        self.assertEqual(code, 200, shown)
        self.assertEqual(shown["address"], lower)
        uid = shown["contact"]["uid"]
        self.assertTrue(uid)
        self.assertEqual([(s["email_id"], s["status"]) for s in shown["sends"]], [("700", "delivered")])
        self.assertTrue(shown["sends"][0]["queue_id"] and shown["sends"][0]["launch_list_id"].startswith("L-"))
        self.assertEqual([(e["action"], e["source"], e["ip"], e["user_agent"]) for e in shown["events"]],
                         [("unsubscribe", "one-click", "127.0.0.1", agent)])
        self.assertEqual([(s["scope"], s["email_id"]) for s in shown["suppressions"]], [("campaign", "700")])
        self.assertTrue(self.held_bytes(lower, agent), "the test must see the bytes before the erasure")

        code, erased = self.api("DELETE", "/api/v1/contacts/" + address)
        self.assertEqual(code, 200, erased)
        self.assertEqual((erased["erased"], erased["uid"], erased["suppressions_kept"], erased["compacted"]),
                         (True, uid, 1, True), erased)
        self.assertEqual(self.api("GET", "/api/v1/contacts/" + address)[0], 404)
        self.assertEqual(self.api("DELETE", "/api/v1/contacts/" + address)[0], 404)  # idempotent
        # A single lookup finds the hashed entry, which names no address.
        code, listed = self.api("GET", "/api/v1/suppressions?address=" + address)
        self.assertEqual(code, 200)
        self.assertEqual(len(listed["suppressions"]), 1)
        self.assertTrue(listed["suppressions"][0]["address"].startswith("erased:"), listed)

        # Exported (and so posted to webhooks) as an erase event that names the uid, not the address.
        export = self.relay.cli("export", "--since", "0")
        self.assertEqual(export.returncode, 0, export.stderr)
        events = [json.loads(line) for line in export.stdout.splitlines()]
        self.assertEqual([(e["action"], e["source"], e["uid"], e["email"]) for e in events if e["action"] == "erase"],
                         [("erase", "api", uid, "")])
        self.assertNotIn(lower, export.stdout)
        self.assertNotIn(agent, export.stdout)
        # The webhook gets the same erase event, without the address or the user agent.
        wait_until(lambda: any(json.loads(b)["action"] == "erase" for b in self.posted), what="the erase webhook")
        erase = [b for b in self.posted if json.loads(b)["action"] == "erase"]
        self.assertEqual([(json.loads(b)["uid"], json.loads(b)["email"]) for b in erase], [(uid, "")])
        self.assertNotIn(lower.encode(), erase[0])
        self.assertNotIn(agent.encode(), erase[0])

        # Later mail to the address is still suppressed: the upstream gets only the other copy.
        files = self.send([address, "keep@example.org"], "701")
        self.assertEqual(len(files), 1)
        self.copy_for(files, "keep@example.org")
        self.assertRegex(self.relay.read_log(), r"status=suppressed \(unsubscribed \(erased address\)")
        self.assertEqual(self.api("GET", "/api/v1/contacts/" + address)[0], 404)  # no contact made again

        self.assertEqual(self.held_bytes(lower, agent), [])

    def test_cli_show_and_erase(self):
        address = f"cli-{uuid.uuid4().hex[:10]}@example.org"
        self.send([address], "800")
        shown = self.relay.cli("contact", "show", address)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        record = json.loads(shown.stdout)
        self.assertEqual((record["address"], len(record["sends"])), (address, 1))
        self.assertTrue(self.relay.cli("suppression", "add", address).returncode == 0)

        erased = self.relay.cli("contact", "erase", address)
        self.assertEqual(erased.returncode, 0, erased.stderr)
        outcome = json.loads(erased.stdout)
        self.assertEqual((outcome["erased"], outcome["suppressions_kept"], outcome["compacted"]), (True, 1, True))
        for command in ("show", "erase"):
            again = self.relay.cli("contact", command, address)
            self.assertEqual(again.returncode, 1, again.stdout)
            self.assertIn("nothing is held about " + address, again.stderr)
        self.assertEqual(self.relay.cli("contact", "erase", "not an address").returncode, 64)
        self.assertEqual(self.relay.cli("contact", "frobnicate", address).returncode, 64)
        self.assertEqual(self.send([address], "801"), [])  # the manual entry survived as a hash
        events = [json.loads(line) for line in self.relay.cli("export", "--since", "0").stdout.splitlines()]
        self.assertIn(("erase", "cli"), [(e["action"], e["source"]) for e in events])
        self.assertEqual(self.held_bytes(address), [])
        # The operator can still lift an erased address's entries by its name.
        removed = self.relay.cli("suppression", "remove", address)
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertEqual(len(self.send([address], "802")), 1)


class SqliteContactsTest(ContactsBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}

    def database_files(self):
        files = glob.glob(os.path.join(self.relay.dir, "var", "unsubrelay.db*"))  # .db, -wal, -shm
        self.assertIn(os.path.join(self.relay.dir, "var", "unsubrelay.db"), files)
        return files


class PostgresContactsTest(ContactsBase, unittest.TestCase):
    def store_settings(self):
        self.server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(self.server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "contacts_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", self.server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        return {"kind": "postgresql", "url": self.server.rsplit("/", 1)[0] + "/" + self.database}

    def psql(self, sql):
        return subprocess.run(["psql", self.server, "-qAt", "-c", sql], check=True, capture_output=True,
                              text=True).stdout.strip()

    def flush(self):
        self.psql("CHECKPOINT")

    def database_files(self):
        """Every file of this database's directory in the server's data directory (base/OID)."""
        data = self.psql("SHOW data_directory")
        oid = self.psql(f"SELECT oid FROM pg_database WHERE datname = '{self.database}'")
        files = [p for p in glob.glob(os.path.join(data, "base", oid, "*")) if os.path.isfile(p)]
        self.assertGreater(len(files), 10)
        return files

    def test_erase_waits_out_a_transaction_in_another_database(self):
        """A snapshot taken in this database inherits its xmin from transactions running in any
        database of the server, and VACUUM FULL keeps the rows such a snapshot might see: with a
        transaction open in another database and short statements running here, the erased rows
        stayed on disk behind `compacted: true` (seen under a loaded test run). The compaction
        waits for that transaction."""
        address = f"other-db-{uuid.uuid4().hex[:10]}@example.org"
        self.assertEqual(len(self.send([address], "710")), 1)
        self.assertEqual(self.api("GET", "/api/v1/contacts/" + address)[0], 200)
        other = subprocess.Popen(["psql", self.server, "-qAt"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        self.addCleanup(other.wait, 30)
        other.stdin.write("BEGIN; SELECT txid_current();\n")
        other.stdin.flush()
        self.assertTrue(other.stdout.readline().strip().isdigit(), "the other database's transaction has an xid")
        here = subprocess.Popen(["psql", self.server.rsplit("/", 1)[0] + "/" + self.database, "-qAt"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.addCleanup(here.wait, 30)
        stop = threading.Event()

        def statements():  # short statements here, each with a fresh snapshot
            while not stop.is_set():
                here.stdin.write("SELECT pg_sleep(0.01);\n")
                here.stdin.flush()
                time.sleep(0.005)
            here.stdin.close()

        def end_other():
            other.stdin.write("COMMIT;\n")
            other.stdin.close()

        runner = threading.Thread(target=statements)
        runner.start()
        ender = threading.Timer(3.0, end_other)
        ender.start()
        try:
            start = time.monotonic()
            code, erased = self.api("DELETE", "/api/v1/contacts/" + address)
            seconds = time.monotonic() - start
        finally:
            ender.join()
            stop.set()
            runner.join()
        self.assertEqual((code, erased.get("compacted")), (200, True), erased)
        self.assertEqual(self.held_bytes(address), [])
        self.assertGreater(seconds, 2.5, "the compaction waited for the other database's transaction")

    def tearDown(self):
        super().tearDown()
        subprocess.run(["psql", self.server, "-q", "-c", f"DROP DATABASE IF EXISTS {self.database}"], check=False)


if __name__ == "__main__":
    unittest.main()
