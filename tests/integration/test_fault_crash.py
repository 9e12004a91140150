"""Fault injection: kill -9 at random moments under load, round after round.

Every round starts the relay on the same spool, sends a share of the load from
several clients at once, and kills the relay with SIGKILL at a random point
(after a random number of 250s, so sometimes mid-DATA, mid-commit or
mid-delivery). At the end the relay runs until its spool is empty. Then:
every message acknowledged with 250 reached the SMTP sink; none arrived
half-written; copies delivered more than once (the upstream said 250 but the
kill came before the spool recorded it) are counted and reported. Run on the
queue-file spool (spool.format: files) and on the group-committed segments (the default).
"""

import random
import smtplib
import threading
import unittest

from faults import Sink, report, scale, send
from relay import Relay, wait_until

ROUNDS = scale(3, 10)
PER_ROUND = scale(150, 1000)
SENDERS = 6


class CrashRoundsTest(unittest.TestCase):
    # spool.format: files on purpose: the queue-file spool (every relay before issue 25) is proven too.
    SPOOL = {"format": "files"}
    NAME = "kill -9, spool.format: files"

    def spool_empty(self, relay):
        return relay.spool_ids() == []  # `queue list`: queue files and segments, beside the running relay

    def test_kill_9_rounds_lose_nothing_acknowledged(self):
        rng = random.Random()
        seed = rng.randrange(1 << 30)
        rng.seed(seed)
        with Sink() as sink:
            relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
                                    "max_connections": 10},
                          spool=self.SPOOL, log={"level": "info"})
            acked, attempted, lock = set(), set(), threading.Lock()
            kills = []
            for round_no in range(ROUNDS):
                relay.start()
                stop = threading.Event()
                round_acked = [0]
                kill_after = rng.randrange(PER_ROUND // 10, PER_ROUND)
                next_id = iter(range(round_no * PER_ROUND, (round_no + 1) * PER_ROUND))

                def sender():
                    while not stop.is_set():
                        with lock:
                            test_id = next(next_id, None)  # noqa: B023 (this round's load)
                        if test_id is None:
                            return
                        test_id = f"m{test_id}"
                        with lock:
                            attempted.add(test_id)
                        try:
                            send(relay.port, test_id)
                        except (OSError, smtplib.SMTPException):
                            return  # the relay died under us: never acknowledged
                        with lock:
                            acked.add(test_id)
                            round_acked[0] += 1

                threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
                for t in threads:
                    t.start()
                wait_until(lambda: round_acked[0] >= kill_after or not any(t.is_alive() for t in threads),
                           timeout=300, what=f"{kill_after} acknowledgements in round {round_no}")
                relay.kill9()
                stop.set()
                for t in threads:
                    t.join()
                kills.append((round_acked[0], sink.count()))

            relay.start()
            wait_until(lambda: self.spool_empty(relay), timeout=600, interval=1,
                       what="the spool to drain after the last restart")
            self.assertEqual(relay.stop(), 0)

        ids = sink.ids()
        counts = {}
        for test_id in ids:
            counts[test_id] = counts.get(test_id, 0) + 1
        half = [d for _, d in sink.received if not d.endswith(b"\r\nEND-OF-MESSAGE\r\n")]
        self.assertEqual(half, [], "half-written messages reached the upstream")
        self.assertNotIn(None, counts, "a message without its X-Test-Id reached the upstream")
        lost = acked - set(counts)
        self.assertEqual(lost, set(), f"acknowledged but never delivered (seed {seed}): {sorted(lost)[:20]}")
        unknown = set(counts) - attempted
        self.assertEqual(unknown, set(), "the sink got messages nobody sent")
        # Committed at the instant of a kill, the 250 lost on the way: at most one per sender per round.
        unacked_delivered = set(counts) - acked
        self.assertLessEqual(len(unacked_delivered), SENDERS * ROUNDS)
        duplicates = sum(n - 1 for n in counts.values())
        report(f"{self.NAME}: {ROUNDS} rounds, {len(attempted)} messages tried, {len(acked)} acknowledged, "
               f"{len(counts)} distinct delivered, 0 lost, 0 half-written, {duplicates} duplicate cop(ies), "
               f"{len(unacked_delivered)} delivered whose 250 never reached the client (seed {seed})")


class SegmentCrashRoundsTest(CrashRoundsTest):
    SPOOL = {}  # the default, spool.format: segments
    NAME = "kill -9, spool.format: segments"


if __name__ == "__main__":
    unittest.main()
