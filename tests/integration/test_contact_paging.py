"""Issue 22 point 8: GET /api/v1/contacts/ADDRESS is paged (limit, cursor,
next_cursor), on SQLite and on PostgreSQL (scripts/test-postgres.sh). A
contact with 250 campaign copies (sent through the relay) and 250 events
(suppressions added and lifted over the API) comes back in pages of at most
`limit` sends and events each, every one exactly once; `unsubrelay contact
show` still prints everything."""

import json
import os
import smtplib
import subprocess
import tempfile
import unittest
import uuid

from relay import Relay, wait_until

API_KEY = "paging-test-key-0123456789abcdef"
AUTH = {"Authorization": "Bearer " + API_KEY}
COPIES = 250


class PagingBase:
    def store_settings(self):
        raise NotImplementedError

    def setUp(self):
        keys = os.path.join(tempfile.mkdtemp(prefix="unsubrelay-paging-"), "api-keys")
        with open(keys, "w") as f:
            f.write(API_KEY + "\n")
        self.relay = Relay(extra={
            "http": {"api_keys_file": keys, "requests_per_minute": 100000},
            "unsubscribe": {"base_url": "https://u.example"},
            "store": self.store_settings(),
        }).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def api(self, method, path):
        code, _, data = self.relay.http(method, path, None, AUTH)
        return code, json.loads(data)

    def fill(self, address):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=60) as s:
            for i in range(COPIES):
                s.sendmail("news@example.com", [address],
                           (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {1000 + i}\r\n"
                            f"X-Launch-List-Id: L-{i:04d}\r\n\r\nLeave: *|UNSUBSCRIBE|*\r\n").encode())
        wait_until(lambda: len(self.relay.outbox_files()) >= COPIES and self.relay.spool_ids() == [], timeout=120,
                   what="every copy delivered")
        for _ in range(COPIES // 2):  # an unsubscribe and a resubscribe event each
            code, _, body = self.relay.http("PUT", "/api/v1/suppressions/" + address, None, AUTH)
            self.assertEqual(code, 201, body)
            code, _, body = self.relay.http("DELETE", "/api/v1/suppressions/" + address, None, AUTH)
            self.assertEqual(code, 200, body)

    def test_every_send_and_event_exactly_once_across_pages(self):
        address = f"paged-{uuid.uuid4().hex[:8]}@example.org"
        self.fill(address)

        code, first = self.api("GET", "/api/v1/contacts/" + address)  # the default page: 100
        self.assertEqual(code, 200, first)
        self.assertEqual((len(first["sends"]), len(first["events"])), (100, 100))
        self.assertTrue(first["next_cursor"])
        self.assertEqual(first["address"], address)
        self.assertTrue(first["contact"]["uid"])
        self.assertIn("suppressions", first)
        self.assertIn("feedback", first)

        sends, events, pages, cursor = [], [], 0, ""
        while True:
            code, page = self.api("GET", f"/api/v1/contacts/{address}?limit=70&cursor={cursor}")
            self.assertEqual(code, 200, page)
            self.assertLessEqual(len(page["sends"]), 70)
            self.assertLessEqual(len(page["events"]), 70)
            sends += [s["launch_list_id"] for s in page["sends"]]
            events += [e["id"] for e in page["events"]]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
            self.assertLess(pages, 10, "paging must end")
        self.assertEqual(pages, 4)  # 70 + 70 + 70 + 40
        self.assertEqual(sorted(sends), [f"L-{i:04d}" for i in range(COPIES)])
        self.assertEqual(len(events), COPIES)
        self.assertEqual(len(set(events)), COPIES)

        # Bounds: limit 1 to 1000, a cursor must be one the API gave.
        for query in ("limit=0", "limit=1001", "limit=x", "cursor=garbage", "cursor=" + "A" * 5000):
            code, answer = self.api("GET", f"/api/v1/contacts/{address}?{query}")
            self.assertEqual(code, 400, (query, answer))
        code, whole = self.api("GET", f"/api/v1/contacts/{address}?limit=1000")
        self.assertEqual((len(whole["sends"]), len(whole["events"]), whole["next_cursor"]), (COPIES, COPIES, ""))

        # The command line still prints everything, in the same fields.
        shown = self.relay.cli("contact", "show", address)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        record = json.loads(shown.stdout)
        self.assertEqual((len(record["sends"]), len(record["events"])), (COPIES, COPIES))
        self.assertEqual(sorted(record["sends"][0]), sorted(first["sends"][0]))
        self.assertEqual(sorted(record["events"][0]), sorted(first["events"][0]))


class SqlitePagingTest(PagingBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}


class PostgresPagingTest(PagingBase, unittest.TestCase):
    def store_settings(self):
        self.server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(self.server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "paging_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", self.server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        return {"kind": "postgresql", "url": self.server.rsplit("/", 1)[0] + "/" + self.database}

    def tearDown(self):
        super().tearDown()
        subprocess.run(["psql", self.server, "-q", "-c", f"DROP DATABASE IF EXISTS {self.database}"], check=False)


if __name__ == "__main__":
    unittest.main()
