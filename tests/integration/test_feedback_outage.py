"""A bounce that arrives while the store is down (docs/feedback.md, "VERP": a
store outage loses nothing): the relay still takes the report with 250, keeps it in
its spool, and applies it once PostgreSQL is back. Run under
scripts/test-postgres.sh."""

import os
import re
import subprocess
import unittest
import uuid

from relay import Relay, wait_until
from test_feedback import BASE_URL, FEEDBACK, VERP_DOMAIN, campaign, copies_to, dsn, send, verp_token


def psql(server, *sql):
    args = ["psql", server, "-q"]
    for statement in sql:
        args += ["-c", statement]
    subprocess.run(args, check=True, capture_output=True)


class FeedbackStoreOutageTest(unittest.TestCase):
    def setUp(self):
        self.server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(self.server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "outage_" + uuid.uuid4().hex[:12]
        psql(self.server, f"CREATE DATABASE {self.database}")
        self.addCleanup(lambda: subprocess.run(
            ["psql", self.server, "-q", "-c", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
            check=False, capture_output=True))
        # libpqxx 6.4 leaks libpq's result of a cut connection (lsan-libpq.supp); every other leak still fails.
        lsan = os.environ.get("LSAN_OPTIONS")
        os.environ["LSAN_OPTIONS"] = "suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                    "lsan-libpq.supp")
        self.addCleanup(lambda: os.environ.pop("LSAN_OPTIONS") if lsan is None else
                        os.environ.__setitem__("LSAN_OPTIONS", lsan))

    def take_database_away(self):
        psql(self.server, f"ALTER DATABASE {self.database} ALLOW_CONNECTIONS false",
             f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.database}'")

    def give_database_back(self):
        psql(self.server, f"ALTER DATABASE {self.database} ALLOW_CONNECTIONS true")

    def test_a_bounce_during_an_outage_is_spooled_and_applied_when_the_store_returns(self):
        url = self.server.rsplit("/", 1)[0] + "/" + self.database
        extra = {"unsubscribe": {"base_url": BASE_URL, "mailto_domain": "unsub.example.com"},
                 "feedback": dict(FEEDBACK, forward_to_sender=False),
                 "store": {"kind": "postgresql", "url": url}}
        # Retries an hour apart: within the test only `queue flush` can deliver the deferred report.
        relay = Relay(extra=extra, spool={"retry_min_seconds": 3600, "retry_max_seconds": 3600})
        try:
            relay.start()
            send(relay.port, ["gone@example.org", "fine@example.org"], campaign("601", "9601"))
            copy = wait_until(lambda: copies_to(relay, "gone@example.org"), what="the campaign copy")
            token = verp_token(copy[0])

            self.take_database_away()
            # The report is acknowledged (smtplib raises on anything but 250) and kept.
            send(relay.port, [f"b+{token}@{VERP_DOMAIN}"], dsn("gone@example.org"), sender="")
            wait_until(lambda: re.search(r"to=<b\+[^>]+>, relay=[^,]+, delay=\d+, status=deferred "
                                         r"\(451 4\.3\.0 store unavailable", relay.read_log()),
                       what="the report deferred")
            self.assertNotIn("feedback: hard_bounce", relay.read_log())
            self.assertEqual(len(relay.spool_ids()), 1, "the report waits in the spool")

            self.give_database_back()
            flushed = relay.cli("queue", "flush")
            self.assertEqual(flushed.returncode, 0, flushed.stdout + flushed.stderr)
            wait_until(lambda: "feedback: hard_bounce of <gone@example.org>" in relay.read_log(), timeout=60,
                       what="the report applied after the outage")
            wait_until(lambda: not relay.spool_ids(), what="the report removed from the spool")

            # And it holds: the next campaign skips the bounced address only.
            send(relay.port, ["gone@example.org", "fine@example.org"], campaign("602", "9602"))
            wait_until(lambda: len(copies_to(relay, "fine@example.org")) == 2, what="fine's second copy")
            wait_until(lambda: "to=<gone@example.org>, delay=" in relay.read_log(), what="the suppressed line")
            self.assertRegex(relay.read_log(), r"to=<gone@example.org>, delay=\d+, status=suppressed \(hard_bounce")
            self.assertEqual(len(copies_to(relay, "gone@example.org")), 1)
        finally:
            self.give_database_back()
            self.assertEqual(relay.stop(), 0, relay.read_log()[-4000:])


if __name__ == "__main__":
    unittest.main()
