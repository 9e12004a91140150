"""The fleet survives its database: PostgreSQL failover and PgBouncer.

FailoverTest: two relays share a primary with a synchronous streaming replica
through a multi-host store.url (target_session_attrs=read-write). While SMTP
clients send campaign mail to both relays and one-click unsubscribes arrive at
both, the replica is promoted and the old primary stopped (immediate: as a
crash). The relays reconnect to the new primary. Then: every message
acknowledged with 250 is delivered, every unsubscribe answered 200 is in the
new primary, and a new campaign to the unsubscribed addresses is suppressed by
both relays. An unsubscribe answered 503 or not at all is "in doubt" (its
COMMIT may have succeeded and only the answer been lost in the switch): it may
be in the store or not; one nobody asked for must not be. FAULT_SCALE=full (scripts/failover.sh) fails over three times,
rebuilding a replica between failovers.

PgBouncerTest: the same fleet, load and checks through PgBouncer 1.18 in
transaction pooling mode with two server connections for many clients.
"""

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
import unittest

from faults import Sink, report, scale
from pgcluster import Cluster, PgBouncer, need_postgres, psql
from relay import BIN, Relay, wait_until

FAILOVERS = scale(1, 3)
LINKS = scale(80, 400)
SENDERS = 4
UNSUBSCRIBERS = 2
LOAD_SECONDS = scale(4, 10)  # of load before each failover, and after the last


def campaign(email_id, launch, test_id=None):
    tag = f"X-Test-Id: {test_id}\r\n" if test_id else ""
    return (f"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n"
            f"{tag}\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\nbody of {test_id}\r\nEND-OF-MESSAGE\r\n").encode()


class Fleet:
    """Two relays on one store.url, one upstream sink, a load and unsubscribes."""

    def __init__(self, test, url):
        self.test = test
        self.sink = Sink().__enter__()
        test.addCleanup(self.sink.__exit__)
        self.dir = tempfile.mkdtemp(prefix="unsubrelay-fleet-")
        keys = os.path.join(self.dir, "keys.yaml")
        subprocess.run([BIN, "keygen", "--id", "fleet", "-o", keys], check=True, capture_output=True)
        self.relays = []
        for name in ("a", "b"):
            r = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": self.sink.port, "tls": "none"},
                      smtp={"hostname": f"relay-{name}.test"}, log={"level": "info"},
                      extra={"store": {"kind": "postgresql", "url": url},
                             "unsubscribe": {"base_url": "https://u.example", "keys_file": keys},
                             "http": {"requests_per_minute": 1000000}})  # every request from one address
            test.addCleanup(r.stop)
            self.relays.append(r.start())
        self.lock = threading.Lock()
        self.attempted, self.acked = set(), set()
        self.unsubscribed = {}  # link -> address, answered 200
        self.in_doubt = {}  # link -> address, answered 503 or not at all (retried while the load lasts)
        self.unsub_errors = 0
        self.next_id = 0

    def links(self, count):
        """Campaign copies through both relays; returns {link: address}."""
        for batch in range(0, count, 40):
            relay = self.relays[(batch // 40) % 2]
            rcpts = [f"u{n}@example.org" for n in range(batch, min(count, batch + 40))]
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as s:
                s.sendmail("news@example.com", rcpts, campaign("700", f"W{batch}"))
        wait_until(lambda: self.sink.count() >= count, timeout=300, what=f"{count} campaign copies")
        found = {}
        for rcpts, data in self.sink.received:
            m = re.search(rb"List-Unsubscribe: <https://u.example(/u/[A-Za-z0-9_-]+)>", data)
            if m:
                found[m.group(1).decode()] = rcpts[0].strip("<>")
        self.test.assertEqual(len(found), count)
        return found

    def sender(self, stop):
        while not stop.is_set():
            with self.lock:
                n = self.next_id
                self.next_id += 1
                test_id = f"f{n}"
                self.attempted.add(test_id)
            relay = self.relays[n % 2]
            try:
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                    s.sendmail("news@example.com", [f"load{n}@example.org"], campaign("701", f"L{n % 7}", test_id))
            except (OSError, smtplib.SMTPException):
                continue
            with self.lock:
                self.acked.add(test_id)

    def unsubscriber(self, stop, todo):
        n = 0
        while not stop.is_set():
            with self.lock:
                if not todo:
                    return
                link, address = todo.pop()
            n += 1
            try:
                status = self.relays[n % 2].http("POST", link, body=b"List-Unsubscribe=One-Click",
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"})[0]
            except OSError:
                status = None
            with self.lock:
                if status == 200:
                    self.unsubscribed[link] = address
                else:
                    self.unsub_errors += 1
                    self.in_doubt[link] = address
                    todo.insert(0, (link, address))
            if status != 200:
                time.sleep(0.1)
            else:
                time.sleep(0.02)

    def load(self, todo, seconds, during=None):
        """Runs the load for `seconds`, calling `during()` half-way; returns what during() returned."""
        stop = threading.Event()
        threads = [threading.Thread(target=self.sender, args=(stop,)) for _ in range(SENDERS)]
        threads += [threading.Thread(target=self.unsubscriber, args=(stop, todo)) for _ in range(UNSUBSCRIBERS)]
        for t in threads:
            t.start()
        result = None
        try:
            stop.wait(seconds / 2)
            if during:
                result = during()
            stop.wait(seconds / 2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        return result

    def check(self, store_addresses):
        """Everything acknowledged delivered; unsubscribes held; suppression on both relays.
        store_addresses(): the address of each unsubscribe event in the store, with repeats."""
        for r in self.relays:
            wait_until(lambda: r.spool_ids() == [], timeout=300, what=f"relay {r.smtp['hostname']}'s spool to drain")
        delivered = {}
        for _, data in self.sink.received:
            m = re.search(rb"X-Test-Id: (\S+)", data)
            if m:
                test_id = m.group(1).decode()
                delivered[test_id] = delivered.get(test_id, 0) + 1
                self.test.assertTrue(data.endswith(f"body of {test_id}\r\nEND-OF-MESSAGE\r\n".encode()),
                                     f"{test_id} arrived half-written")
        lost = self.acked - set(delivered)
        self.test.assertEqual(lost, set(), f"acknowledged but never delivered: {sorted(lost)[:20]}")
        self.test.assertGreater(len(self.acked), 20, "too little load to prove anything")
        self.test.assertGreater(len(self.unsubscribed), 10, "too few unsubscribes to prove anything")
        # Every unsubscribe answered 200 is in the database now serving, once; besides them only
        # unsubscribes in doubt (their answer lost in the switch, never retried to a 200) may be there.
        stored = store_addresses()
        self.test.assertEqual(len(stored), len(set(stored)), "an unsubscribe recorded twice")
        answered = set(self.unsubscribed.values())
        doubtful = set(self.in_doubt.values()) - answered
        self.test.assertEqual(answered - set(stored), set(), "unsubscribes answered 200 and not in the store")
        self.test.assertEqual(set(stored) - answered - doubtful, set(), "unsubscribes in the store nobody asked for")
        self.in_doubt_kept = len(set(stored) & doubtful)
        for n, link in enumerate(sorted(self.unsubscribed)):
            page = self.relays[n % 2].http("GET", link)[2]
            self.test.assertIn(b"no longer receives", page, f"unsubscribe {link} answered 200 and then lost")
        # A new campaign to every unsubscribed address, through both relays: all suppressed.
        before = self.sink.count()
        addresses = sorted(self.unsubscribed.values())
        for i, relay in enumerate(self.relays):
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as s:
                s.sendmail("news@example.com", addresses, campaign("702", f"S{i}"))
        for r in self.relays:
            wait_until(lambda: r.spool_ids() == [], timeout=120, what="the suppression campaign to be processed")
            wait_until(lambda: r.read_log().count("status=suppressed") >= len(addresses), timeout=60,
                       what=f"{len(addresses)} suppressed on relay {r.smtp['hostname']}")
        self.test.assertEqual(self.sink.count(), before, "a copy went to an unsubscribed address")
        return len(delivered), sum(n - 1 for n in delivered.values())


def unsubscribed_addresses(port, database):
    """The address of each unsubscribe event in the store, with repeats."""
    out = psql(port, "SELECT c.address FROM events e JOIN contacts c ON c.uid = e.uid "
                     "WHERE e.action = 'unsubscribe' ORDER BY e.id", database)
    return out.split("\n") if out else []


class FailoverTest(unittest.TestCase):
    def test_promote_the_replica_under_load(self):
        directory = tempfile.mkdtemp(prefix="unsubrelay-failover-")
        self.addCleanup(shutil.rmtree, directory, True)
        with Cluster(directory, synchronous=True) as cluster:
            cluster.create_database("fleet")
            fleet = Fleet(self, cluster.url("fleet"))
            todo = list(fleet.links(LINKS).items())
            seconds = []
            for n in range(FAILOVERS):
                if n:
                    cluster.rebuild_standby()
                seconds.append(fleet.load(todo, LOAD_SECONDS, during=cluster.failover))
            fleet.load(todo, LOAD_SECONDS)  # and on after the last one
            deferred = sum(r.read_log().count("store unavailable") for r in fleet.relays)
            delivered, duplicates = fleet.check(lambda: unsubscribed_addresses(cluster.primary.port, "fleet"))
            self.assertEqual(psql(cluster.primary.port, "SELECT pg_is_in_recovery()"), "f")
        report(f"failover: {FAILOVERS} failover(s) under load (promote the synchronous replica, stop the old "
               f"primary immediately; {', '.join(f'{s:.1f}' for s in seconds)} s each); two relays, "
               f"{len(fleet.attempted)} messages tried, {len(fleet.acked)} acknowledged, all delivered, 0 lost, "
               f"{duplicates} duplicate(s); {len(fleet.unsubscribed)} unsubscribes answered 200, 0 lost "
               f"({fleet.unsub_errors} answered 503 or not at all during the switch, retried; "
               f"{len(set(fleet.in_doubt.values()) - set(fleet.unsubscribed.values()))} never answered 200, "
               f"{fleet.in_doubt_kept} of them in the store); suppression held on "
               f"both relays; {deferred} recipient(s) deferred for a moment with 'store unavailable'")


class PgBouncerTest(unittest.TestCase):
    def test_fleet_through_transaction_pooling(self):
        need_postgres()
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        port = int(re.search(r":(\d+)/", server).group(1))
        database = f"bouncer_{os.getpid()}"
        psql(port, f"CREATE DATABASE {database}")
        self.addCleanup(lambda: psql(port, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        directory = tempfile.mkdtemp(prefix="unsubrelay-pgbouncer-")
        self.addCleanup(shutil.rmtree, directory, True)
        with PgBouncer(directory, port, pool_size=2) as bouncer:
            self.assertIn("transaction", bouncer.show("CONFIG").split("pool_mode|", 1)[1].split("\n")[0])
            fleet = Fleet(self, f"postgresql://unsubrelay@127.0.0.1:{bouncer.port}/{database}")
            todo = list(fleet.links(LINKS).items())
            fleet.load(todo, LOAD_SECONDS * 2)
            delivered, _ = fleet.check(lambda: unsubscribed_addresses(port, database))
            for r in fleet.relays:
                self.assertNotRegex(r.read_log(), r"prepared statement|store.*(error|unavailable)")
        report(f"pgbouncer 1.18, pool_mode=transaction, 2 server connections: two relays, {len(fleet.acked)} "
               f"messages acknowledged, all delivered; {len(fleet.unsubscribed)} unsubscribes answered 200, all "
               f"in the store; suppression held on both relays; no store error in either log")


if __name__ == "__main__":
    unittest.main()
