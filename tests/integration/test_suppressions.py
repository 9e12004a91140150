"""Suppression list management (issue 13, points 1 and 2) with the real binary,
on the embedded SQLite store and on PostgreSQL (scripts/test-postgres.sh):
the /api/v1/suppressions routes and `unsubrelay suppression ...`, with real
SMTP mail showing that an entry stops the copies it should and only those."""

import json
import os
import re
import smtplib
import subprocess
import tempfile
import unittest
import uuid

from relay import Relay, wait_until

API_KEY = "suppression-test-key-0123456789abcdef"
AUTH = {"Authorization": "Bearer " + API_KEY}
TOPICS = [{"id": "newsletter", "name": "Weekly newsletter"}, {"id": "offers", "name": "Offers"}]


def campaign(email_id, launch, topic=None):
    topic_line = f"X-Topic: {topic}\r\n" if topic else ""
    return (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n"
            f"{topic_line}\r\nLeave: *|UNSUBSCRIBE|*\r\n").encode()


class SuppressionsBase:
    """The tests; a subclass picks the store."""

    def store_settings(self):
        raise NotImplementedError

    def setUp(self):
        keys = tempfile.mkdtemp(prefix="unsubrelay-api-")
        api_keys = os.path.join(keys, "api-keys")
        with open(api_keys, "w") as f:
            f.write(API_KEY + "\n")
        self.relay = Relay(extra={
            "http": {"api_keys_file": api_keys, "requests_per_minute": 100000},
            "unsubscribe": {"base_url": "https://u.example", "topics": TOPICS, "suppression": "topic"},
            "store": self.store_settings(),
        }).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def api(self, method, path, body=None, headers=None):
        code, _, data = self.relay.http(method, path, body, {**AUTH, **(headers or {})})
        return code, (json.loads(data) if data.startswith(b"{") else data)

    def delivered_to(self):
        out = []
        for path in self.relay.outbox_files():
            with open(path, "rb") as f:
                out.append(re.search(rb"^Delivered-To: (.+)\r\n", f.read(), re.M).group(1).decode())
        return sorted(out)

    def send(self, recipients, email_id="500", launch=None, topic=None):
        """Sends one campaign and waits until every copy is delivered or suppressed."""
        launch = launch or "L-" + uuid.uuid4().hex[:8]
        before = len(self.relay.outbox_files())
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.sendmail("news@example.com", recipients, campaign(email_id, launch, topic))
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        return len(self.relay.outbox_files()) - before

    def events(self):
        out = self.relay.cli("export", "--since", "0")
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def test_every_route_requires_the_api_key(self):
        for method, path, body in [("GET", "/api/v1/suppressions", None),
                                   ("GET", "/api/v1/suppressions?address=a@example.org", None),
                                   ("PUT", "/api/v1/suppressions/a@example.org", "{}"),
                                   ("DELETE", "/api/v1/suppressions/a@example.org", None),
                                   ("POST", "/api/v1/suppressions/import", "email\na@example.org\n")]:
            for headers in ({}, {"Authorization": "Bearer wrong-key"}):
                code, _, _ = self.relay.http(method, path, body, headers)
                self.assertEqual(code, 401, (method, path, headers))
        code, body = self.api("GET", "/api/v1/suppressions?address=a@example.org")
        self.assertEqual((code, body["suppressions"]), (200, []))  # nothing was added by the refused calls

    def test_import_keeps_good_rows_reports_bad_ones_and_suppresses(self):
        body = ("\ufeffEmail,Reason,Note\r\n"
                "Alice@Example.org,complaint,\"quoted, comma\"\r\n"
                "not-an-address,manual,x\r\n"
                "bob@example.org,hard_bounce,y\r\n"
                "carol@example.org,nonsense-reason,z\r\n").encode()
        code, report = self.api("POST", "/api/v1/suppressions/import", body, {"Content-Type": "text/csv"})
        self.assertEqual(code, 200, report)
        self.assertEqual((report["format"], report["rows"], report["added"], report["bad_rows"]), ("csv", 2, 2, 2))
        self.assertEqual([e["line"] for e in report["errors"]], [3, 5])
        # Idempotent: the same import again adds nothing and records no new event.
        code, again = self.api("POST", "/api/v1/suppressions/import", body)
        self.assertEqual((code, again["rows"], again["added"], again["renewed"]), (200, 2, 0, 2))
        imported = [e for e in self.events() if e["source"] == "import"]
        self.assertEqual(sorted(e["email"] for e in imported), ["alice@example.org", "bob@example.org"])

        self.assertEqual(self.send(["alice@example.org", "bob@example.org", "dave@example.org"]), 1)
        self.assertEqual(self.delivered_to(), ["dave@example.org"])
        log = self.relay.read_log()
        self.assertRegex(log, r"to=<alice@example.org>, .*status=suppressed \(complaint from import")
        self.assertRegex(log, r"to=<bob@example.org>, .*status=suppressed \(hard_bounce from import")

    def test_import_of_garbage_is_a_clear_error_that_applies_nothing(self):
        code, report = self.api("POST", "/api/v1/suppressions/import", b"name,city\nx,y\n")
        self.assertEqual(code, 400, report)
        self.assertIn("address column", report["fatal"])
        code, report = self.api("POST", "/api/v1/suppressions/import", bytes(range(256)) * 4)
        self.assertEqual((code, report["rows"]), (400, 0), report)
        code, body = self.api("GET", "/api/v1/suppressions")
        self.assertEqual(body["suppressions"], [])

    def test_put_get_delete_with_topics_and_paging(self):
        code, body = self.api("PUT", "/api/v1/suppressions/Erin@Example.org", json.dumps({"topic": "offers"}))
        self.assertEqual(code, 201, body)
        self.assertEqual((body["entry"]["scope"], body["entry"]["topic"], body["entry"]["reason"]),
                         ("topic", "offers", "manual"))
        code, body = self.api("PUT", "/api/v1/suppressions/erin@example.org", json.dumps({"topic": "offers"}))
        self.assertEqual((code, body["added"]), (200, False))
        code, body = self.api("PUT", "/api/v1/suppressions/erin@example.org", json.dumps({"topic": "gardening"}))
        self.assertEqual(code, 400)
        # The topic entry stops that topic's mail only.
        self.assertEqual(self.send(["erin@example.org"], topic="offers"), 0)
        self.assertEqual(self.send(["erin@example.org"], topic="newsletter"), 1)

        for i in range(5):
            self.assertEqual(self.api("PUT", f"/api/v1/suppressions/p{i}@example.org", "")[0], 201)
        seen, cursor, pages = [], "", 0
        while True:
            code, body = self.api("GET", "/api/v1/suppressions?since=0&limit=2" + (f"&cursor={cursor}" if cursor else ""))
            self.assertEqual(code, 200, body)
            seen += [e["address"] for e in body["suppressions"]]
            pages += 1
            cursor = body["next_cursor"]
            if not cursor:
                break
        self.assertEqual(sorted(seen), sorted(["erin@example.org"] + [f"p{i}@example.org" for i in range(5)]))
        self.assertEqual(len(seen), 6)
        self.assertGreaterEqual(pages, 3)
        self.assertEqual(self.api("GET", "/api/v1/suppressions?cursor=zz")[0], 400)
        self.assertEqual(self.api("GET", "/api/v1/suppressions?limit=100000")[0], 400)

        code, body = self.api("GET", "/api/v1/suppressions?address=P1@example.org")
        self.assertEqual([e["address"] for e in body["suppressions"]], ["p1@example.org"])
        self.assertEqual(self.send(["p1@example.org"]), 0)
        code, body = self.api("DELETE", "/api/v1/suppressions/p1@example.org")
        self.assertEqual((code, body["lifted"]), (200, 1))
        self.assertEqual(self.api("DELETE", "/api/v1/suppressions/p1@example.org")[0], 404)
        self.assertEqual(self.send(["p1@example.org"]), 1)
        code, body = self.api("DELETE", "/api/v1/suppressions/erin@example.org?topic=offers")
        self.assertEqual((code, body["lifted"]), (200, 1))
        self.assertEqual(self.send(["erin@example.org"], topic="offers"), 1)

        api_events = [(e["action"], e["email"], e.get("topic", "")) for e in self.events() if e["source"] == "api"]
        self.assertIn(("unsubscribe", "erin@example.org", "offers"), api_events)
        self.assertIn(("resubscribe", "erin@example.org", "offers"), api_events)
        self.assertIn(("resubscribe", "p1@example.org", ""), api_events)

    def test_the_cli_imports_lists_adds_and_removes(self):
        ses = {"SuppressedDestinationSummaries": [
            {"EmailAddress": "ses1@example.org", "Reason": "BOUNCE", "LastUpdateTime": "2024-01-02T03:04:05Z"},
            {"EmailAddress": "ses2@example.org", "Reason": "COMPLAINT", "LastUpdateTime": "2024-01-03T00:00:00Z"}]}
        path = os.path.join(self.relay.dir, "ses.json")
        with open(path, "w") as f:
            json.dump(ses, f, indent=2)
        out = self.relay.cli("suppression", "import", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("ses format, 2 rows imported (2 new, 0 already suppressed), 0 bad rows", out.stdout)
        listed = [json.loads(l) for l in self.relay.cli("suppression", "list").stdout.splitlines()]
        self.assertEqual([(e["address"], e["reason"], e["created"]) for e in listed],
                         [("ses1@example.org", "hard_bounce", 1704164645), ("ses2@example.org", "complaint", 1704240000)])

        bad = os.path.join(self.relay.dir, "bad.csv")
        with open(bad, "w") as f:
            f.write("address\nok@example.org\nbroken@\n")
        out = self.relay.cli("suppression", "import", bad)
        self.assertEqual(out.returncode, 65, out.stdout)
        self.assertIn("bad.csv:3:", out.stderr)

        out = self.relay.cli("suppression", "add", "Frank@example.org", "--topic", "newsletter")
        self.assertEqual((out.returncode, out.stdout), (0, "suppressed frank@example.org\n"), out.stderr)
        self.assertEqual(self.relay.cli("suppression", "add", "x@example.org", "--topic", "nope").returncode, 64)
        one = self.relay.cli("suppression", "list", "--address", "frank@example.org").stdout
        self.assertEqual(json.loads(one)["topic"], "newsletter")
        out = self.relay.cli("suppression", "remove", "frank@example.org")
        self.assertEqual((out.returncode, out.stdout), (0, "lifted 1 entry of frank@example.org\n"))
        self.assertEqual(self.relay.cli("suppression", "remove", "frank@example.org").returncode, 1)
        self.assertEqual(self.relay.cli("suppression", "frobnicate").returncode, 64)
        self.assertEqual(self.send(["ses1@example.org", "frank@example.org"], topic="newsletter"), 1)
        self.assertEqual(self.delivered_to(), ["frank@example.org"])


class SqliteSuppressionsTest(SuppressionsBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}


class PostgresSuppressionsTest(SuppressionsBase, unittest.TestCase):
    def store_settings(self):
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "supp_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        return {"kind": "postgresql", "url": server.rsplit("/", 1)[0] + "/" + self.database}

    def tearDown(self):
        super().tearDown()
        subprocess.run(["psql", os.environ["UNSUBRELAY_TEST_PG_URL"], "-q", "-c",
                        f"DROP DATABASE IF EXISTS {self.database}"], check=False)


if __name__ == "__main__":
    unittest.main()
