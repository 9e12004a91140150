"""Delivery on several threads (upstream.delivery_threads, docs/performance-threads.md).

The queue is sharded by queue id across delivery threads, each with its own
upstream connections. Through the real binary and a real SMTP upstream: every
copy of many multi-recipient messages, plain and campaign, arrives exactly
once, each over a connection of the shard its queue id hashes to, and both
shards deliver; after an upstream outage `unsubrelay queue flush` delivers
everything, again exactly once.
"""

import os
import re
import struct
import unittest

from faults import Sink, send, send_concurrently
from relay import Relay, free_port, wait_until

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
MESSAGES = 80          # half of them campaign messages
RCPTS = 5
SENDERS = 4


def campaign(test_id):
    with open(os.path.join(DATA, "campaign-alternative-qp.eml"), "rb") as f:
        return f"X-Test-Id: {test_id}\r\n".encode() + f.read()


def send_campaign(port, test_id, rcpts):
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("news@example.com", rcpts, campaign(test_id))


def rcpts_of(n):
    return [f"r{n}-{i}@example.org" for i in range(RCPTS)]


def send_all(port, count):
    """count messages of RCPTS recipients from SENDERS clients at once; every other one a campaign."""
    def one(n):
        (send_campaign if n % 2 else send)(port, f"m{n}", rcpts_of(n))
    return send_concurrently(count, SENDERS, one)


def copies(sink):
    """(X-Test-Id, recipient) of every copy the upstream received, with repeats."""
    out = []
    with sink.lock:
        for rcpts, data in sink.received:
            m = re.search(rb"X-Test-Id: (\S+)", data)
            for r in rcpts:
                out.append((m.group(1).decode() if m else None, r.strip("<>")))
    return out


class ConnectionSink(Sink):
    """A Sink whose 250 to each message names the connection's client port, so that
    the relay's status=sent line tells which upstream connection carried the copy."""

    def _session(self, rfile, wfile, conn):
        port = conn.getpeername()[1]

        class Tagged:
            def write(self, data):
                return wfile.write(data.replace(b"Ok: queued", f"Ok: queued on {port}".encode()))

            def flush(self):
                wfile.flush()

        return super()._session(rfile, Tagged(), conn)


def std_hash(text):
    """libstdc++'s std::hash<std::string> on 64-bit Linux (_Hash_bytes, MurmurHash64A-like)."""
    mask = (1 << 64) - 1
    mul = (0xc6a4a793 << 32) + 0x5bd1e995
    data = text.encode()
    shift_mix = lambda v: v ^ (v >> 47)  # noqa: E731
    h = (0xc70f6907 ^ (len(data) * mul)) & mask
    aligned = len(data) & ~7
    for i in range(0, aligned, 8):
        h = ((h ^ ((shift_mix((struct.unpack_from("<Q", data, i)[0] * mul) & mask) * mul) & mask)) * mul) & mask
    if len(data) & 7:
        h = ((h ^ int.from_bytes(data[aligned:], "little")) * mul) & mask
    return shift_mix((shift_mix(h) * mul) & mask)


def shards_by_connection(log, count):
    """{sink-side connection port: {shard_of(queue id), ...}} from the status=sent lines
    (QueueManager::shard_of: std::hash of the queue id modulo the shard count)."""
    out = {}
    for qid, port in re.findall(r"^\S+ \S+ info (\S+): to=<[^>]*>, .*status=sent \(250 2\.0\.0 Ok: queued on (\d+)\)",
                                log, re.M):
        out.setdefault(int(port), set()).add(std_hash(qid) % count)
    return out


def expected(count):
    return sorted((f"m{n}", r) for n in range(count) for r in rcpts_of(n))


class DeliveryThreadsTest(unittest.TestCase):
    def relay(self, port, spool=None):
        return Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
                               "max_connections": 6, "delivery_threads": 2},
                     spool=spool, log={"level": "info"},
                     extra={"unsubscribe": {"base_url": "https://unsub.example.com"}})

    def assert_exactly_once(self, sink, count):
        got = copies(sink)
        self.assertEqual(len(got), len(set(got)), "duplicate copies at the upstream")
        self.assertEqual(sorted(got), expected(count))

    def delivery_threads(self, relay):
        task = f"/proc/{relay.proc.pid}/task"
        names = []
        for t in os.listdir(task):
            with open(os.path.join(task, t, "comm")) as f:
                names.append(f.read().strip())
        return sorted({n for n in names if n.startswith("deliver-")})  # threads they start inherit the name

    def assert_each_shard_delivers_its_own(self, log):
        """Each upstream connection carried the copies of one shard only (a shard's pool is its
        own), the shard their queue ids hash to; and both shards delivered."""
        by_connection = shards_by_connection(log, 2)
        self.assertEqual(sum(1 for line in log.splitlines() if "status=sent" in line),
                         log.count("Ok: queued on "), "a status=sent line without its connection")
        mixed = {port: shards for port, shards in by_connection.items() if len(shards) != 1}
        self.assertEqual(mixed, {}, "connections that carried copies of both shards' queue ids")
        self.assertEqual(set().union(*by_connection.values()), {0, 1}, "copies delivered per shard: "
                         f"{ {p: sorted(s) for p, s in by_connection.items()} }")

    def test_every_copy_arrives_exactly_once_over_two_delivery_threads(self):
        with ConnectionSink() as sink, self.relay(sink.port) as relay:
            self.assertEqual(send_all(relay.port, MESSAGES), [])
            self.assertEqual(self.delivery_threads(relay), ["deliver-0", "deliver-1"])
            wait_until(lambda: relay.spool_ids() == [], timeout=300, what="the spool to drain")
            log = relay.read_log()
        self.assertIn("2 delivery thread(s)", log)
        self.assert_exactly_once(sink, MESSAGES)
        # Campaign copies were rendered per recipient (their own link) on both threads.
        links = set()
        with sink.lock:
            for _, data in sink.received:
                links.update(re.findall(rb"https://unsub\.example\.com/u/[A-Za-z0-9_-]+", data))
        self.assertGreaterEqual(len(links), MESSAGES // 2 * RCPTS)
        self.assertNotIn("status=deferred", log)
        self.assertEqual(log.count("status=sent"), MESSAGES * RCPTS)
        self.assert_each_shard_delivers_its_own(log)

    def test_queue_flush_after_an_outage_delivers_everything_once(self):
        port = free_port()  # nothing listens there yet: the upstream is down
        relay = self.relay(port, spool={"retry_min_seconds": 3600, "retry_max_seconds": 3600})
        with relay:
            self.assertEqual(send_all(relay.port, MESSAGES // 2), [])
            wait_until(lambda: relay.read_log().count("status=deferred") >= MESSAGES // 2 * RCPTS,
                       timeout=120, what="every copy deferred")
            self.assertEqual(len(relay.spool_ids()), MESSAGES // 2)
            with ConnectionSink(port=port) as sink:
                flushed = relay.cli("queue", "flush")
                self.assertEqual(flushed.returncode, 0, flushed.stderr)
                wait_until(lambda: relay.spool_ids() == [], timeout=120, what="the spool to drain after flush")
                self.assert_exactly_once(sink, MESSAGES // 2)
            log = relay.read_log()
        self.assertIn("queue flush", log)
        self.assert_each_shard_delivers_its_own(log)


if __name__ == "__main__":
    unittest.main()
