"""Every outcome of every copy as signed webhook events, export and API (issue 26, docs/events.md).

Real copies go through the relay to a fake SES (fake_ses.py) that accepts, defers
(451 4.2.2, then accepts), refuses with 550 5.1.1 and with 550 5.7.1; a real DSN and
a real ARF report are mailed back through the relay's SMTP port, and a signed SNS
notification is posted to /feedback/ses (test_feedback_ses.py's signing). Two HTTP
receivers check the HMAC signature of every body: one asks for every event in
batches, the other has no `events:` and must see what receivers saw before issue
26 (subscription events, one JSON object per POST). Both backends.
"""

import hashlib
import hmac
import http.server
import json
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import test_feedback as fb
import test_feedback_ses as sns_helpers
from fake_ses import FakeSes, make_sns_files
from relay import BIN, Relay, make_users_file, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
VERP = "bounces.example.com"
FBL = "fbl@example.com"
BASE_URL = "https://unsub.example.com"
API_KEY = "events-test-key-0123456789abcdef"
ALL = ["delivered", "deferred", "bounced", "blocked", "complaint", "suppressed", "unsubscribe", "resubscribe", "erase"]


def campaign(email_id, launch, topic=None):
    return (f"From: News <news@example.com>\r\nTo: list@example.org\r\nSubject: news {launch}\r\n"
            f"Message-ID: <c-{launch}@example.com>\r\nX-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello.\r\n\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n").encode()


def read_text(path):
    with open(path) as f:
        return f.read()


def send(port, rcpts, data, sender="news@example.com"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, rcpts, data)


class SignedReceiver:
    """An HTTP receiver that checks each body's X-Unsubrelay-Signature with the secret,
    keeps every POST in order and answers 204 after `delay` seconds."""

    def __init__(self, test, secret, delay=0.0):
        self.secret, self.delay, self.posts, self.bad = secret.encode(), delay, [], []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(owner.secret, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get("X-Unsubrelay-Signature", "")):
                    owner.bad.append(body)
                owner.posts.append((dict(self.headers), body, time.monotonic()))
                if owner.delay:
                    time.sleep(owner.delay)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        test.addCleanup(self.server.server_close)
        test.addCleanup(self.server.shutdown)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"

    def events(self):
        out = []
        for _, body, _ in list(self.posts):
            parsed = json.loads(body)
            out.extend(parsed if isinstance(parsed, list) else [parsed])
        return out


class Sns:
    """test_feedback_ses.py's SNS signing, borrowed (plain functions in Python 3)."""
    sign = sns_helpers.SesFeedbackTest.sign
    envelope = sns_helpers.SesFeedbackTest.envelope
    notification = sns_helpers.SesFeedbackTest.notification
    bounce = sns_helpers.SesFeedbackTest.bounce

    def __init__(self, sign_key, base):
        self.sign_key, self.base = sign_key, base


class EventsBase:
    """The end-to-end test, once per backend (store_settings)."""

    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.mkdtemp(prefix="unsubrelay-events-")
        cls.ca, cls.cert, cls.key, cls.sign_key, cls.sign_cert = make_sns_files(cls.files)
        for name, value in (("user", "AKIATEST"), ("password", "ses-secret"), ("api-keys", API_KEY),
                            ("all-secret", "all-events-secret"), ("legacy-secret", "legacy-secret")):
            with open(os.path.join(cls.files, name), "w") as f:
                f.write(value + "\n")
        cls.port_file = os.path.join(cls.files, "https.port")
        cls.https = subprocess.Popen([sys.executable, os.path.join(HERE, "https_fixture.py"), cls.cert, cls.key,
                                      cls.port_file, cls.sign_cert])
        cls.https_port = int(wait_until(lambda: os.path.exists(cls.port_file) and read_text(cls.port_file)))
        cls.sns = Sns(cls.sign_key, f"https://localhost:{cls.https_port}")

    @classmethod
    def tearDownClass(cls):
        cls.https.kill()
        cls.https.wait()

    def relay_for(self, ses, hooks):
        upstream = {"kind": "ses", "host": "localhost", "port": ses.port, "tls": "starttls", "ca_file": self.ca,
                    "username_file": os.path.join(self.files, "user"),
                    "password_file": os.path.join(self.files, "password")}
        extra = {"unsubscribe": {"base_url": BASE_URL},
                 "http": {"api_keys_file": os.path.join(self.files, "api-keys"), "requests_per_minute": 100000},
                 "feedback": {"return_path_domain": VERP, "complaint_addresses": [FBL], "forward_to_sender": False,
                              "ses_sns": {"topic_arns": [sns_helpers.TOPIC],
                                          "cert_url_prefixes": [f"{self.sns.base}/"], "ca_file": self.ca}},
                 "store": self.store_settings(), "webhooks": hooks}
        return Relay(extra=extra, upstream=upstream)

    def api(self, relay, query):
        status, _, body = relay.http("GET", "/api/v1/events?" + query, None, {"Authorization": f"Bearer {API_KEY}"})
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_every_outcome_signed_in_order_filtered_exported_and_after_a_restart(self):
        everything = SignedReceiver(self, "all-events-secret")
        legacy = SignedReceiver(self, "legacy-secret")
        hooks = [{"url": everything.url, "secret_file": os.path.join(self.files, "all-secret"), "events": ALL,
                  "batch_size": 20, "batch_ms": 200},
                 {"url": legacy.url, "secret_file": os.path.join(self.files, "legacy-secret")}]
        with FakeSes(self.cert, self.key) as ses:
            ses.handler.rcpt_rules["gone@example.org"] = ["550 5.1.1 Mailbox does not exist"]
            ses.handler.rcpt_rules["picky@example.org"] = ["550 5.7.1 Message rejected as spam"]
            ses.handler.rcpt_rules["slow@example.org"] = ["451 4.2.2 Mailbox busy", "451 4.2.2 Mailbox busy"]
            relay = self.relay_for(ses, hooks)
            self.addCleanup(relay.stop)
            relay.start()
            wait_until(lambda: relay.read_log().count("first start, sending the events after id") == 2,
                       what="both receivers' starting positions")
            self.assertEqual(relay.cli("suppression", "add", "stopped@example.org").returncode, 0)

            rcpts = ["fine@example.org", "gone@example.org", "picky@example.org", "slow@example.org",
                     "stopped@example.org", "angry@example.org", "late@example.org", "sesb@example.org"]
            send(relay.port, rcpts, campaign("E1", "L1"))
            wait_until(lambda: any("slow@example.org" in m.rcpt_tos for m in ses.handler.messages), timeout=60,
                       what="slow's copy accepted after two deferrals")
            wait_until(lambda: relay.spool_ids() == [], what="the campaign settled")
            copies = {m.rcpt_tos[0]: m for m in ses.handler.messages}

            # A real DSN for late@ to its copy's VERP address, a real ARF report for angry@'s copy,
            # a signed SNS bounce for sesb@ naming the SES message id, a one-click opt-out for fine@.
            token = re.match(r"b\+([A-Za-z0-9_-]+)@", copies["late@example.org"].mail_from).group(1)
            send(relay.port, [f"b+{token}@{VERP}"], fb.dsn("late@example.org"), sender="")
            angry = copies["angry@example.org"].content.decode()
            lu = re.search(r"^List-Unsubscribe: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", angry, re.M).group(0)
            send(relay.port, [FBL], fb.arf(lu + "\r\n"), sender="")
            # In this order at the legacy receiver: the complaint's opt-out before fine@'s one-click.
            wait_until(lambda: "feedback: complaint of <angry@example.org>" in relay.read_log(),
                       what="the complaint recorded")
            note = self.sns.notification(self.sns.bounce(copies["sesb@example.org"].message_id, "sesb@example.org",
                                                         "fb-events-1"))
            status, _, _ = relay.http("POST", "/feedback/ses", json.dumps(note).encode(),
                                      {"Content-Type": "text/plain; charset=UTF-8",
                                       "x-amz-sns-message-type": "Notification"})
            self.assertEqual(status, 200)
            link = re.search(rb"List-Unsubscribe: <" + re.escape(BASE_URL.encode()) + rb"(/u/[A-Za-z0-9_-]+)>",
                             copies["fine@example.org"].content).group(1).decode()
            self.assertEqual(relay.http("POST", link, "List-Unsubscribe=One-Click",
                                        {"Content-Type": "application/x-www-form-urlencoded"})[0], 200)

            def seen(action, email, source=None):
                return [e for e in everything.events() if e["action"] == action and e["email"] == email and
                        (source is None or e["source"] == source)]

            wait_until(lambda: seen("unsubscribe", "fine@example.org") and seen("bounced", "sesb@example.org") and
                       seen("complaint", "angry@example.org") and seen("bounced", "late@example.org", "dsn"),
                       timeout=30, what="every event at the receiver")
            self.check_events(everything, legacy, copies)

            # Export and the API give the same events as the receiver (without and with ids).
            posted = [e for e in everything.events() if e["action"] in ("delivered", "bounced")]
            out = relay.cli("export", "--events", "delivered,bounced", "--since", "0")
            self.assertEqual(out.returncode, 0, out.stderr)
            exported = [json.loads(line) for line in out.stdout.splitlines()]
            self.assertEqual(exported, [{k: v for k, v in e.items() if k != "id"} for e in posted])
            self.assertEqual(relay.cli("export", "--events", "bounced,nonsense").returncode, 64)
            page, cursor, listed = None, "0", []
            while page is None or page["events"]:
                page = self.api(relay, f"types=delivered,bounced&limit=2&cursor={cursor}")
                listed += page["events"]
                cursor = page["next_cursor"]
            self.assertEqual(listed, posted)

            # A restart: the receivers go on from their stored positions, nothing is posted twice.
            self.assertEqual(relay.stop(), 0)
            relay.start()
            send(relay.port, ["marker@example.org"], campaign("E2", "L2"))
            wait_until(lambda: seen("delivered", "marker@example.org"), timeout=30, what="the marker after restart")
            ids = [e["id"] for e in everything.events()]
            self.assertEqual(ids, sorted(set(ids)), "in id order, none twice")
            legacy_ids = [e["id"] for e in legacy.events()]
            self.assertEqual(legacy_ids, sorted(set(legacy_ids)))

            # Erased: the address is gone from every event of the contact, wherever it is read.
            self.assertEqual(relay.cli("contact", "erase", "fine@example.org").returncode, 0)
            wait_until(lambda: [e for e in everything.events() if e["action"] == "erase"], what="the erase event")
            erase = [e for e in everything.events() if e["action"] == "erase"][0]
            self.assertEqual(erase["email"], "")
            fine_uid = [e for e in everything.events() if e["email"] == "fine@example.org"][0]["uid"]
            again = [e for e in self.api(relay, "types=delivered,unsubscribe&limit=1000")["events"]
                     if e["uid"] == fine_uid]
            self.assertEqual([e["email"] for e in again], ["", ""])
            self.assertEqual(everything.bad + legacy.bad, [], "every body signed with the receiver's secret")

    def check_events(self, everything, legacy, copies):
        events = everything.events()
        self.assertEqual(everything.bad, [])
        ids = [e["id"] for e in events]
        self.assertEqual(ids, sorted(set(ids)), "in id order, none twice")
        # Batches: JSON arrays, the header naming the last id and the count.
        for headers, body, _ in everything.posts:
            batch = json.loads(body)
            self.assertIsInstance(batch, list)
            self.assertLessEqual(len(batch), 20)
            self.assertEqual(headers["X-Unsubrelay-Event-Id"], str(batch[-1]["id"]))
            self.assertEqual(headers["X-Unsubrelay-Event-Count"], str(len(batch)))

        def one(action, email, **fields):
            found = [e for e in events if e["action"] == action and e["email"] == email]
            self.assertEqual(len(found), 1, (action, email, found))
            for k, v in fields.items():
                self.assertEqual(found[0][k], v, (action, email, k, found[0]))
            return found[0]

        for e in events:
            if e["action"] in ("unsubscribe", "resubscribe", "erase"):
                continue
            self.assertEqual((e["email_id"], e["launch_list_id"]), ("E1", "L1"), e)
            self.assertTrue(e["uid"] and e["queue_id"] and e["time"] > 0, e)
        smtp = [e for e in events if e["source"] in ("smtp", "relay")]
        self.assertTrue(all(isinstance(e["copy"], int) for e in smtp))
        self.assertEqual(len({e["queue_id"] for e in smtp}), 1)
        delivered = one("delivered", "fine@example.org", source="smtp",
                        upstream_id=copies["fine@example.org"].message_id)
        self.assertTrue(delivered["reply"].startswith("250"), delivered)
        self.assertEqual(delivered["copy"], 0)
        deferred = one("deferred", "slow@example.org", status="4.2.2")  # the first only
        self.assertTrue(deferred["reply"].startswith("451 4.2.2 Mailbox busy"), deferred)
        one("delivered", "slow@example.org")
        gone = one("bounced", "gone@example.org", source="smtp", bounce_type="hard", status="5.1.1")
        self.assertTrue(gone["diagnostic"].startswith("550 5.1.1 Mailbox does not exist"), gone)
        picky = one("blocked", "picky@example.org", source="smtp", status="5.7.1")
        self.assertTrue(picky["diagnostic"].startswith("550 5.7.1 Message rejected as spam"), picky)
        suppressed = one("suppressed", "stopped@example.org", source="relay", scope="global")
        self.assertTrue(suppressed["reason"].startswith("manual from cli on "), suppressed)
        self.assertNotIn("stopped@example.org", [m for m in copies])
        one("complaint", "angry@example.org", source="arf", feedback_type="abuse")
        one("bounced", "late@example.org", source="dsn", bounce_type="hard", status="5.1.1")
        one("bounced", "sesb@example.org", source="ses", bounce_type="hard", status="5.1.1")
        one("unsubscribe", "fine@example.org", source="one-click")
        # The complaint comes before the opt-out it causes.
        complaint = one("complaint", "angry@example.org")
        caused = one("unsubscribe", "angry@example.org", source="complaint")
        self.assertLess(complaint["id"], caused["id"])
        # A receiver without `events:` sees what receivers saw before: subscription events, one object per POST.
        wait_until(lambda: len(legacy.events()) >= 3, what="the legacy receiver's events")
        self.assertEqual([(e["action"], e["email"]) for e in legacy.events()[:3]],
                         [("unsubscribe", "stopped@example.org"), ("unsubscribe", "angry@example.org"),
                          ("unsubscribe", "fine@example.org")])
        for headers, body, _ in legacy.posts:
            self.assertIsInstance(json.loads(body), dict)
            self.assertEqual(headers["X-Unsubrelay-Event-Count"], "1")
        self.assertEqual(set(legacy.events()[0]), {"id", "action", "source", "time", "uid", "email", "email_id",
                                                   "launch_list_id", "ip", "user_agent", "topic"})


class TenantEventsBase:
    """With tenants (docs/tenants.md): a copy's events go to its tenant's store, that tenant's
    receivers and that tenant's API keys only."""

    def test_a_tenants_events_reach_its_receivers_and_keys_only(self):
        d = tempfile.mkdtemp(prefix="unsubrelay-tenant-events-")
        for key_id in ("top1", "acme1"):
            made = subprocess.run([BIN, "keygen", "--id", key_id, "-o", os.path.join(d, f"{key_id}.yaml")],
                                  capture_output=True, text=True)
            self.assertEqual(made.returncode, 0, made.stderr)
        for name, value in (("admin-keys", "admin-key-0123456789"), ("acme-keys", "acme-key-0123456789"),
                            ("secret", "tenant-events-secret")):
            with open(os.path.join(d, name), "w") as f:
                f.write(value + "\n")
        users = make_users_file(d, {"acme-app": "acme-secret"})
        default_hook, acme_hook = SignedReceiver(self, "tenant-events-secret"), SignedReceiver(self, "tenant-events-secret")
        hook = {"secret_file": os.path.join(d, "secret"), "events": ["delivered", "unsubscribe"]}
        relay = Relay(smtp={"auth": {"users_file": users, "require_tls": False}, "default_tenant": "default"}, extra={
            "store": self.store_settings(),
            "unsubscribe": {"keys_file": os.path.join(d, "top1.yaml"), "base_url": BASE_URL},
            "http": {"api_keys_file": os.path.join(d, "admin-keys")},
            "webhooks": [{"url": default_hook.url, **hook}],
            "tenants": [{"id": "acme", "smtp_users": ["acme-app"], "sender_domains": ["acme.example"],
                         "keys_file": os.path.join(d, "acme1.yaml"), "api_keys_file": os.path.join(d, "acme-keys"),
                         "webhooks": [{"url": acme_hook.url, **hook}]}]})
        self.addCleanup(relay.stop)
        relay.start()
        wait_until(lambda: relay.read_log().count("first start, sending the events after id") == 2,
                   what="both tenants' receivers started")
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
            s.login("acme-app", "acme-secret")
            s.sendmail("news@acme.example", ["kim@example.org"],
                       campaign("A1", "LA1").replace(b"news@example.com", b"news@acme.example"))
        send(relay.port, ["lou@example.org"], campaign("D1", "LD1"))
        wait_until(lambda: acme_hook.events() and default_hook.events(), what="each tenant's delivered event")
        self.assertEqual([(e["action"], e["email"]) for e in acme_hook.events()], [("delivered", "kim@example.org")])
        self.assertEqual([(e["action"], e["email"]) for e in default_hook.events()], [("delivered", "lou@example.org")])

        def listed(key, query=""):
            status, _, body = relay.http("GET", "/api/v1/events" + query, None, {"Authorization": f"Bearer {key}"})
            return status, json.loads(body)
        status, body = listed("acme-key-0123456789")
        self.assertEqual((status, [e["email"] for e in body["events"]]), (200, ["kim@example.org"]))
        self.assertEqual(listed("acme-key-0123456789", "?tenant=default")[0], 404)  # another tenant is not there
        self.assertEqual(listed("admin-key-0123456789")[0], 400)  # an admin key names the tenant
        status, body = listed("admin-key-0123456789", "?tenant=default&types=delivered")
        self.assertEqual((status, [e["email"] for e in body["events"]]), (200, ["lou@example.org"]))
        self.assertEqual(relay.http("GET", "/api/v1/events", None, {"Authorization": "Bearer wrong"})[0], 401)
        out = relay.cli("export", "--tenant", "acme", "--events", "delivered")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual([json.loads(l)["email"] for l in out.stdout.splitlines()], ["kim@example.org"])
        self.assertEqual(acme_hook.bad + default_hook.bad, [])


class SqliteEventsTest(EventsBase, TenantEventsBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}

    def test_mail_never_waits_for_a_slow_receiver(self):
        """A receiver that takes 1 s per POST, one event per POST: its 15 events take 15 s to post,
        the 15 copies are delivered and their queue file removed long before; the receiver then
        catches up, in order."""
        slow = SignedReceiver(self, "all-events-secret", delay=1.0)
        hooks = [{"url": slow.url, "secret_file": os.path.join(self.files, "all-secret"), "events": ["delivered"]}]
        relay = Relay(extra={"store": self.store_settings(), "unsubscribe": {"base_url": BASE_URL},
                             "webhooks": hooks})
        self.addCleanup(relay.stop)
        relay.start()
        wait_until(lambda: "first start, sending the events after id" in relay.read_log(), what="the start position")
        send(relay.port, [f"r{i}@example.org" for i in range(15)], campaign("S1", "LS1"))
        relay.wait_for_outbox(15)
        wait_until(lambda: relay.spool_ids() == [], what="the message settled")
        self.assertLess(len(slow.posts), 15, "delivery finished while the receiver was still behind")
        wait_until(lambda: len(slow.events()) == 15, timeout=60, what="the receiver caught up")
        ids = [e["id"] for e in slow.events()]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertEqual(slow.bad, [])


class PostgresEventsTest(EventsBase, TenantEventsBase, unittest.TestCase):
    def setUp(self):
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        self.database = "events_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {self.database}"], check=True)
        self.url = server.rsplit("/", 1)[0] + "/" + self.database
        self.addCleanup(subprocess.run, ["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {self.database}"],
                        check=False)

    def store_settings(self):
        return {"kind": "postgresql", "url": self.url}

    def test_a_fleet_sends_each_outcome_once_and_another_relay_takes_over(self):
        """Two relays on one database write their copies' events into it; one of them (the lease's
        holder) posts all of them; when it is killed the other carries on from the stored position.
        kill -9 may come after POSTs were answered and before their position was stored: then those
        batches come again (at least once), and nothing else does."""
        receiver = SignedReceiver(self, "all-events-secret")
        hooks = [{"url": receiver.url, "secret_file": os.path.join(self.files, "all-secret"),
                  "events": ["delivered"], "batch_size": 5, "batch_ms": 100, "lease_seconds": 3}]
        extra = {"store": self.store_settings(), "unsubscribe": {"base_url": BASE_URL}, "webhooks": hooks}
        a, b = Relay(extra=extra), Relay(extra=extra)
        for r in (a, b):
            self.addCleanup(r.stop)
            r.start()
        decided = ("this relay is now the sender", "another relay is now the sender")
        wait_until(lambda: all(any(d in r.read_log() for d in decided) for r in (a, b)), timeout=30,
                   what="both relays' first answer from the lease")
        wait_until(lambda: "first start, sending the events after id" in a.read_log() + b.read_log(),
                   what="the fleet's starting position")
        send(a.port, [f"a{i}@example.org" for i in range(6)], campaign("F1", "LF1"))
        send(b.port, [f"b{i}@example.org" for i in range(4)], campaign("F2", "LF2"))
        wait_until(lambda: len(receiver.events()) == 10, timeout=30, what="ten delivered events")
        senders = [r for r in (a, b) if "this relay is now the sender" in r.read_log()]
        self.assertEqual(len(senders), 1, "exactly one relay posts")
        sender = senders[0]
        other = b if sender is a else a
        sender.kill9()
        send(other.port, [f"c{i}@example.org" for i in range(3)], campaign("F3", "LF3"))
        wait_until(lambda: {e["email"] for e in receiver.events()} >= {f"c{i}@example.org" for i in range(3)},
                   timeout=40, what="the other relay's take-over")
        self.assertIn("this relay is now the sender", other.read_log())
        self.assertEqual(receiver.bad, [])
        events = receiver.events()
        self.assertEqual({e["email"] for e in events},
                         {f"{p}{i}@example.org" for p, n in (("a", 6), ("b", 4), ("c", 3)) for i in range(n)})
        first = [e["id"] for e in events[:10]]
        self.assertEqual(first, sorted(set(first)))
        # At least once: the new sender starts from the stored position, so what comes again is
        # the tail of what came before the kill (at most its last second: docs/events.md).
        after = [e["id"] for e in events[10:]]
        repeated = [i for i in after if i in set(first)]
        self.assertEqual(repeated, first[len(first) - len(repeated):])
        fresh = [i for i in after if i not in set(first)]
        self.assertEqual(fresh, sorted(set(fresh)))
        self.assertGreater(min(fresh), max(first))


if __name__ == "__main__":
    unittest.main()
