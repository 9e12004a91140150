"""Fault injection: a slow upstream that drops connections and throttles, under load.

The sink answers every message late, cuts every 7th connection half-way
through DATA, answers every 5th MAIL FROM with SES's 454 throttling reply, and
swallows the reply of every 11th message (it has the message, the relay cannot
know). After a throttled MAIL FROM it still accepts RCPT and DATA, as lenient
pipelining servers do: the relay must not send the content then. Clients send the whole load at once. Nothing acknowledged may be lost;
the only duplicates allowed are the swallowed replies; a retried message waits
at least retry_min_seconds between attempts.
"""

import unittest

from faults import Sink, report, scale, send, send_concurrently
from relay import Relay, wait_until

MESSAGES = scale(120, 1000)
SENDERS = 6
RETRY_MIN = 1


class UpstreamFaultTest(unittest.TestCase):
    def test_slow_dropping_throttling_upstream_loses_nothing(self):
        with Sink(delay=0.02, drop_every=7, throttle_every=5, lose_reply_every=11, lenient=True) as sink:
            relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
                                    "max_connections": 10},
                          spool={"retry_min_seconds": RETRY_MIN, "retry_max_seconds": 4}, log={"level": "info"})
            acked = []

            def send_one(n):
                send(relay.port, f"u{n}")
                acked.append(f"u{n}")

            with relay:
                errors = send_concurrently(MESSAGES, SENDERS, send_one)
                self.assertEqual(len(acked), MESSAGES, errors[:5])
                wait_until(lambda: relay.spool_ids() == [], timeout=600, what="the spool to drain")
                log = relay.read_log()

        counts = {}
        for test_id in sink.ids():
            counts[test_id] = counts.get(test_id, 0) + 1
        lost = set(acked) - set(counts)
        self.assertEqual(lost, set(), f"acknowledged but lost: {sorted(lost)[:20]}")
        duplicates = sum(n - 1 for n in counts.values())
        self.assertLessEqual(duplicates, sink.faults["lost_reply"])
        self.assertGreater(sink.faults["dropped"], 0)
        self.assertGreater(sink.faults["throttled"], 0)
        self.assertGreater(sink.faults["lost_reply"], 0)
        self.assertIn("status=deferred", log)
        # Backoff: nobody is retried sooner than retry_min_seconds after a failed attempt.
        gaps = [b - a for times in sink.attempts.values() for a, b in zip(times, times[1:])]
        self.assertTrue(gaps, "no message was seen twice by the sink")
        self.assertGreaterEqual(min(gaps), RETRY_MIN * 0.9, f"retried too soon: {min(gaps):.2f}s")
        deferrals = log.count("status=deferred")
        report(f"upstream faults: {MESSAGES} messages, {sink.faults['dropped']} connections cut mid-DATA, "
               f"{sink.faults['throttled']} throttled (454), {sink.faults['lost_reply']} replies swallowed, "
               f"{deferrals} deferrals; {len(counts)} delivered, 0 lost, {duplicates} duplicate(s) "
               f"(all from swallowed replies), shortest retry gap {min(gaps):.2f}s")


if __name__ == "__main__":
    unittest.main()


class ConnectionReuseTest(unittest.TestCase):
    """Copies reuse the upstream connection without an RSET round trip each; a
    connection the server closed meanwhile costs a new connection, never a deferral."""

    def run_messages(self, sink, count):
        relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
                                "max_connections": 1}, log={"level": "info"})
        with relay:
            for n in range(count):
                send(relay.port, f"r{n}")
                wait_until(lambda: sink.count() == n + 1, what=f"message {n} at the upstream")  # noqa: B023
            wait_until(lambda: relay.spool_ids() == [], what="the spool to empty")
            return relay.read_log()

    def test_a_live_connection_is_reused_without_rset(self):
        with Sink() as sink:
            log = self.run_messages(sink, 5)
        self.assertEqual(sink.connections, 1)
        self.assertEqual(sink.verbs.get("RSET", 0), 0)
        self.assertEqual(sink.verbs.get("MAIL"), 5)
        self.assertNotIn("status=deferred", log)

    def test_a_connection_closed_by_the_server_is_replaced_without_deferring(self):
        with Sink(close_after_message=True) as sink:
            log = self.run_messages(sink, 4)
        self.assertEqual(sorted(sink.ids()), [f"r{n}" for n in range(4)])  # each exactly once
        self.assertEqual(sink.connections, 4)
        self.assertNotIn("status=deferred", log)
