"""The unsubscribe service against the real binary: one-click, page, API, mailto, suppression, metrics."""

import json
import os
import re
import smtplib
import sqlite3
import tempfile
import unittest

from relay import RawClient, Relay, wait_until

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
API_KEY = "test-api-key-7f3a"


def sample(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def campaign(email_id="222222222", launch="111111111", body="Unsubscribe: *|UNSUBSCRIBE|* uid=$uid$"):
    return (f"From: news@example.com\r\nTo: list@example.org\r\nSubject: c\r\nX-Campaign-Id: {email_id}\r\n"
            f"X-Launch-List-Id: {launch}\r\n\r\n{body}\r\n").encode()


class HttpTest(unittest.TestCase):
    def setUp(self):
        keys = tempfile.mkdtemp(prefix="unsubrelay-api-")
        self.api_keys = os.path.join(keys, "api-keys")
        with open(self.api_keys, "w") as f:
            f.write(f"# bearer keys\n{API_KEY}\n")
        self.relay = Relay(extra={
            "http": {"api_keys_file": self.api_keys, "trusted_proxies": ["127.0.0.1/32"]},
            "unsubscribe": {"base_url": "https://unsub.example.com", "mailto_domain": "unsub.example.com"},
            "smtp": {"allow_networks": ["127.0.0.0/8"]},
        }).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    # Helpers -------------------------------------------------------------

    def send(self, rcpts, data):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.sendmail("news@example.com", rcpts, data)

    def links(self, rcpts, data=None, wait=True):
        """Sends a campaign and returns {recipient: /u/TOKEN path}."""
        before = set(self.relay.outbox_files())
        self.send(rcpts, data or campaign())
        if not wait:
            return {}
        files = wait_until(lambda: (set(self.relay.outbox_files()) - before
                                    if len(set(self.relay.outbox_files()) - before) >= len(rcpts) else None),
                           what="the copies")
        out = {}
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            rcpt = re.search(rb"^Delivered-To: (.+)\r\n", data, re.M).group(1).decode()
            out[rcpt] = re.search(rb"List-Unsubscribe: <https://unsub.example.com(/u/[A-Za-z0-9_-]+)>", data).group(1).decode()
        return out

    def status_of(self, path):
        code, _, body = self.relay.http("GET", "/api/v1/tokens/" + path[3:])
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def api(self, payload, key=API_KEY, raw=None):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        code, _, body = self.relay.http("POST", "/api/v2/email/unsubscribe", raw or json.dumps(payload), headers)
        return code, json.loads(body)

    def events(self):
        db = sqlite3.connect(os.path.join(self.relay.dir, "var", "unsubrelay.db"))
        try:
            # Subscription events: the copies' outcomes share the table (docs/events.md).
            return db.execute("SELECT action, source, ip, user_agent FROM events WHERE action IN "
                              "('unsubscribe', 'resubscribe', 'erase') ORDER BY id").fetchall()
        finally:
            db.close()

    # Tests -----------------------------------------------------------------

    def test_one_click_in_both_encodings_is_immediate_and_idempotent(self):
        links = self.links(["a@example.org", "b@example.org"])
        form = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "GoogleOneClick/1.0"}
        code, headers, body = self.relay.http("POST", links["a@example.org"], "List-Unsubscribe=One-Click", form)
        self.assertEqual((code, body), (200, b"unsubscribed\n"))
        self.assertNotIn("Location", headers)
        self.assertNotIn("Set-Cookie", headers)
        self.assertEqual(self.status_of(links["a@example.org"])["status"], "unsubscribed")  # in the same request

        boundary = "----x9f"
        multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                     f"One-Click\r\n--{boundary}--\r\n")
        code, _, body = self.relay.http("POST", links["b@example.org"], multipart,
                                        {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self.assertEqual((code, body), (200, b"unsubscribed\n"))
        self.assertEqual(self.status_of(links["b@example.org"])["status"], "unsubscribed")

        for _ in range(3):  # repeating is harmless and records nothing new
            self.assertEqual(self.relay.http("POST", links["a@example.org"], "List-Unsubscribe=One-Click", form)[0], 200)
        events = self.events()
        self.assertEqual([(e[0], e[1]) for e in events], [("unsubscribe", "one-click")] * 2)
        self.assertEqual(events[0][3], "GoogleOneClick/1.0")

    def test_get_and_head_never_change_state(self):
        link = self.links(["a@example.org"])["a@example.org"]
        for method in ("GET", "HEAD", "GET"):
            code, headers, body = self.relay.http(method, link)
            self.assertEqual(code, 200)
            if method == "HEAD":
                self.assertEqual(body, b"")
        self.assertEqual(self.status_of(link)["status"], "subscribed")
        self.assertEqual(self.events(), [])

    def test_page_confirm_then_resubscribe(self):
        link = self.links(["alice@example.org"])["alice@example.org"]
        code, headers, page = self.relay.http("GET", link)
        page = page.decode()
        self.assertEqual(code, 200)
        self.assertIn("a***@example.org", page)
        self.assertNotIn("alice@example.org", page)
        self.assertIn("222222222", page)
        self.assertIn(f'<form method="post" action="{link}">', page)
        self.assertIn("no-store", headers["Cache-Control"])
        code, _, done = self.relay.http("POST", link, "action=unsubscribe",
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 200)
        self.assertIn("You are unsubscribed", done.decode())
        self.assertIn(f'action="{link}/resubscribe"', done.decode())
        self.assertEqual(self.status_of(link)["status"], "unsubscribed")
        code, _, back = self.relay.http("POST", link + "/resubscribe", "", {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 200)
        self.assertIn("subscribed again", back.decode())
        self.assertEqual(self.status_of(link)["status"], "subscribed")
        self.assertEqual(self.relay.http("POST", link + "/resubscribe", "")[0], 409)  # only after an unsubscribe
        self.assertEqual(self.relay.http("GET", link + "/resubscribe")[0], 405)
        self.assertEqual([(e[0], e[1]) for e in self.events()], [("unsubscribe", "page"), ("resubscribe", "page")])

    def test_emarsys_api_contract(self):
        self.links(["a@example.org"])
        uid = self.status_of(self.links(["c@example.org"], campaign())["c@example.org"])  # make sure data exists
        db = sqlite3.connect(os.path.join(self.relay.dir, "var", "unsubrelay.db"))
        uid = db.execute("SELECT uid FROM contacts WHERE address = 'a@example.org'").fetchone()[0]
        db.close()

        self.assertEqual(self.api({"launch_list_id": "111111111", "email_id": "222222222", "uid": uid}, key=None)[0], 401)
        self.assertEqual(self.api({"launch_list_id": "111111111", "email_id": "222222222", "uid": uid}, key="wrong")[0], 401)
        code, body = self.api({"launch_list_id": "111111111"})
        self.assertEqual((code, body["replyCode"], body["replyText"]), (400, 1006, "Empty parameter(s): [email_id, uid]"))
        code, body = self.api({"launch_list_id": "", "email_id": " ", "uid": uid})
        self.assertEqual((body["replyCode"], body["replyText"]), (1006, "Empty parameter(s): [launch_list_id, email_id]"))
        self.assertEqual(self.api(None, raw="not json")[1]["replyCode"], 1006)
        code, body = self.api({"launch_list_id": "999", "email_id": "222222222", "uid": uid})
        self.assertEqual((code, body["replyCode"], body["replyText"]), (400, 6042, "No such launch"))
        code, body = self.api({"launch_list_id": "111111111", "email_id": "333", "uid": uid})
        self.assertEqual((code, body["replyCode"], body["replyText"]), (400, 6025, "No such campaign"))
        code, body = self.api({"launch_list_id": "111111111", "email_id": "222222222", "uid": "nobody"})
        self.assertEqual((code, body["replyCode"], body["replyText"]), (400, 1003, "Internal error"))
        # Numbers as JSON numbers and as JSON strings (the seed's example) are both accepted.
        code, body = self.api({"launch_list_id": 111111111, "email_id": "222222222", "uid": uid})
        self.assertEqual((code, body["replyCode"], body["replyText"]), (200, 0, "OK"))
        self.assertIn("data", body)
        self.assertEqual(self.events()[-1][:2], ("unsubscribe", "api"))

        code, _, summary = self.relay.http("GET", "/api/v2/email/222222222/responses/summary?launch_list_id=111111111",
                                           headers={"Authorization": "Bearer " + API_KEY})
        data = json.loads(summary)["data"]
        self.assertEqual((code, data["sent"], data["delivered"], data["unsubscribed"]), (200, 2, 2, 1))
        self.assertAlmostEqual(data["unsubscribe_rate"], 0.5)
        self.assertEqual(self.relay.http("GET", "/api/v2/email/222222222/responses/summary")[0], 401)

    def test_bad_tokens_get_clear_errors(self):
        link = self.links(["a@example.org"])["a@example.org"]
        token = link[3:]
        tampered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
        other_keys = os.path.join(self.relay.dir, "other-keys.yaml")
        self.assertEqual(self.relay.cli("keygen", "--id", "zz9", "-o", other_keys).returncode, 0)
        cases = {
            "tampered": ("/u/" + tampered, (400,)),
            "truncated": ("/u/" + token[:40], (400,)),
            "garbage": ("/u/%00%ff<script>", (400,)),
            "10 KB": ("/u/" + "A" * 10240, (400,)),
            "empty": ("/u/", (400,)),
        }
        for name, (path, codes) in cases.items():
            for method, body in (("GET", None), ("POST", "List-Unsubscribe=One-Click")):
                code, _, page = self.relay.http(method, path, body, {"Content-Type": "application/x-www-form-urlencoded"})
                self.assertIn(code, codes, f"{name} {method}")
                if method == "GET":
                    self.assertIn("This link is not valid", page.decode())
            code, _, body = self.relay.http("GET", "/api/v1/tokens/" + path[3:])
            self.assertIn(code, codes, name)
            self.assertIn("error", json.loads(body))
        self.assertEqual(self.events(), [])
        code, _, metrics = self.relay.http("GET", "/metrics")
        self.assertRegex(metrics.decode(), r'unsubrelay_token_failures_total\{reason="token signature does not match[^"]*"\} [1-9]')

    def test_mailto_unsubscribe_through_smtp(self):
        link = self.links(["a@example.org"])["a@example.org"]
        token = link[3:]
        before = len(self.relay.outbox_files())
        c = RawClient(self.relay.port)
        c.reply()
        c.command("EHLO mua.example.org")
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(c.command(f"RCPT TO:<u+{token}@unsub.example.com>")[0], 250)
        self.assertEqual(c.command("DATA")[0], 354)
        code, text = c.command("Subject: unsubscribe\r\n\r\nplease\r\n.")
        self.assertEqual(code, 250, text)
        c.command("QUIT")
        c.close()
        self.assertEqual(self.status_of(link)["status"], "unsubscribed")
        self.assertEqual(len(self.relay.outbox_files()), before)  # nothing relayed
        self.assertEqual([(e[0], e[1]) for e in self.events()], [("unsubscribe", "mailto")])

    def test_suppression_and_transactional_mail(self):
        link = self.links(["a@example.org", "b@example.org"])["a@example.org"]
        self.relay.http("POST", link, "List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"})
        before = set(self.relay.outbox_files())
        self.send(["a@example.org", "b@example.org"], campaign(email_id="333", launch="444"))
        wait_until(lambda: "status=suppressed" in self.relay.read_log(), what="the suppression")
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        new = set(self.relay.outbox_files()) - before
        self.assertEqual(len(new), 1)
        with open(new.pop(), "rb") as f:
            self.assertIn(b"Delivered-To: b@example.org", f.read())
        self.assertRegex(self.relay.read_log(), r"to=<a@example.org>, delay=\d+, status=suppressed")
        # Transactional mail is never suppressed.
        self.send(["a@example.org"], b"Subject: your receipt\r\n\r\nThanks.\r\n")
        wait_until(lambda: len(set(self.relay.outbox_files()) - before) == 2, what="the receipt")
        code, _, summary = self.relay.http("GET", "/api/v2/email/333/responses/summary?launch_list_id=444",
                                           headers={"Authorization": "Bearer " + API_KEY})
        data = json.loads(summary)["data"]
        self.assertEqual((data["sent"], data["delivered"], data["suppressed"]), (1, 1, 1))

    def test_forwarded_for_is_trusted_only_from_proxies_and_metrics_count(self):
        link = self.links(["a@example.org"])["a@example.org"]
        # The copy is written before its message leaves the spool: wait for that, not race it.
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        self.relay.http("POST", link, "List-Unsubscribe=One-Click",
                        {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "198.51.100.7"})
        self.assertEqual(self.events()[0][2], "198.51.100.7")  # 127.0.0.1 is a configured proxy
        code, _, metrics = self.relay.http("GET", "/metrics")
        text = metrics.decode()
        self.assertEqual(code, 200)
        self.assertIn('unsubrelay_unsubscribes_total{source="one-click"} 1', text)
        self.assertRegex(text, r"unsubrelay_messages_received_total [1-9]")
        self.assertRegex(text, r"unsubrelay_copies_rendered_total [1-9]")
        self.assertIn("unsubrelay_spool_messages 0", text)
        self.assertRegex(text, r'unsubrelay_upstream_latency_seconds_bucket\{le="\+Inf"\} [1-9]')
        self.assertRegex(text, r"unsubrelay_upstream_latency_seconds_count [1-9]")
        code, _, health = self.relay.http("GET", "/healthz")
        self.assertEqual((code, json.loads(health)["status"]), (200, "ok"))
        self.assertEqual(self.relay.http("GET", "/nope")[0], 404)


    def test_bytes_that_are_not_utf8_never_break_a_json_answer(self):
        """fuzz_http found the summary endpoint failing on them; export had the same flaw."""
        code, _, body = self.relay.http("GET", "/api/v2/email/2%FF%9D2/responses/summary",
                                        headers={"Authorization": "Bearer " + API_KEY})
        self.assertIn(code, (200, 404))
        self.assertIn("\ufffd", json.loads(body).get("data", {}).get("email_id", "\ufffd"))
        link = self.links(["utf@example.org"])["utf@example.org"]
        code, _, _ = self.relay.http("POST", link, "List-Unsubscribe=One-Click",
                                     {"Content-Type": "application/x-www-form-urlencoded",
                                      "User-Agent": "Mail\xff\xfeClient"})
        self.assertEqual(code, 200)
        exported = self.relay.cli("export", "--since", "0", "--format", "jsonl")
        self.assertEqual(exported.returncode, 0, exported.stderr)
        self.assertIn("Mail\ufffd\ufffdClient", json.loads(exported.stdout.splitlines()[0])["user_agent"])


class StatsExportRetentionTest(unittest.TestCase):
    def test_stats_export_and_retention(self):
        relay = Relay(extra={"store": {"launch_retention_days": 60}}).start()
        try:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["a@example.org", "b@example.org", "c@example.org"],
                           campaign(email_id="555", launch="666"))
            wait_until(lambda: relay.spool_ids() == [] and len(relay.outbox_files()) == 3, what="3 copies")
            with open(relay.outbox_files()[0], "rb") as f:
                link = re.search(rb"List-Unsubscribe: <[^>]*(/u/[A-Za-z0-9_-]+)>", f.read()).group(1).decode()
            code, _, _ = relay.http("POST", link, "List-Unsubscribe=One-Click",
                                    {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "UA, with comma"})
            self.assertEqual(code, 200)

            stats = relay.cli("stats", "--campaign", "555")
            self.assertEqual(stats.returncode, 0, stats.stderr)
            row = [line for line in stats.stdout.splitlines() if line.startswith("555")][0].split()
            # email_id launch kind sent delivered deferred bounced suppressed unsubscribed rate
            self.assertEqual(row[:9], ["555", "666", "batch", "3", "3", "0", "0", "0", "1"])
            self.assertEqual(row[9], "33.33%")

            exported = relay.cli("export", "--since", "2020-01-01")
            self.assertEqual(exported.returncode, 0, exported.stderr)
            lines = [json.loads(x) for x in exported.stdout.splitlines()]
            self.assertEqual(len(lines), 1)
            self.assertEqual((lines[0]["action"], lines[0]["source"], lines[0]["email_id"], lines[0]["launch_list_id"]),
                             ("unsubscribe", "one-click", "555", "666"))
            self.assertRegex(lines[0]["email"], r"^[abc]@example.org$")
            csv = relay.cli("export", "--since", "0", "--format", "csv").stdout.splitlines()
            self.assertEqual(csv[0], "time,action,source,uid,email,email_id,launch_list_id,ip,user_agent")
            self.assertTrue(csv[1].endswith(',555,666,127.0.0.1,"UA, with comma"'), csv[1])
            self.assertEqual(relay.cli("export", "--since", "tomorrow").returncode, 64)
            self.assertEqual(relay.stop(), 0)

            # Age the batch launch past the retention period, add an old on-event launch: restart purges one.
            db = sqlite3.connect(os.path.join(relay.dir, "var", "unsubrelay.db"))
            db.execute("UPDATE launches SET created = created - 61 * 86400 WHERE launch_list_id = '666'")
            db.execute("INSERT INTO launches (launch_list_id, email_id, created, kind) VALUES ('777', '555', 1, 'on-event')")
            db.commit()
            db.close()
            relay.start()
            wait_until(lambda: "retention: 1 batch launch(es) older than 60 days purged" in relay.read_log(),
                       what="the retention purge")
            stats = relay.cli("stats", "--campaign", "555").stdout
            self.assertNotIn(" 666 ", stats)
            self.assertIn("777", stats)
            self.assertEqual(len(relay.cli("export").stdout.splitlines()), 1)  # events are kept
        finally:
            relay.stop()


class WebhookTest(unittest.TestCase):
    def test_events_are_posted_signed_and_retried(self):
        import hashlib
        import hmac
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        received, attempts = [], []

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                attempts.append(body)
                if len(attempts) <= 2:  # the receiver is down for the first two tries
                    self.send_response(500)
                    self.end_headers()
                    return
                received.append((body, self.headers["X-Unsubrelay-Signature"], self.headers["X-Unsubrelay-Event-Id"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Receiver)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        secret_file = os.path.join(tempfile.mkdtemp(), "webhook-secret")
        with open(secret_file, "w") as f:
            f.write("s3cret-webhook-key\n")
        try:
            relay = Relay(extra={"webhooks": [{"url": f"http://127.0.0.1:{server.server_port}/hooks/unsub",
                                               "secret_file": secret_file}]}).start()
            try:
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                    s.sendmail("news@example.com", ["a@example.org", "b@example.org"], campaign())
                paths = []
                for f in relay.wait_for_outbox(2):
                    with open(f, "rb") as fh:
                        paths.append(re.search(rb"List-Unsubscribe: <[^>]*(/u/[A-Za-z0-9_-]+)>", fh.read()).group(1).decode())
                # A User-Agent that is not UTF-8 once ended the webhook thread (and the relay) in JSON encoding.
                form = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Hook\xffAgent"}
                for p in paths:
                    self.assertEqual(relay.http("POST", p, "List-Unsubscribe=One-Click", form)[0], 200)
                wait_until(lambda: len(received) == 2, timeout=30, what="both events at the receiver")
                self.assertEqual(len(attempts), 4)  # two failures, then each event once
                events = [json.loads(b) for b, _, _ in received]
                self.assertEqual([e["action"] for e in events], ["unsubscribe", "unsubscribe"])
                self.assertEqual(sorted(e["email"] for e in events), ["a@example.org", "b@example.org"])
                self.assertEqual({e["user_agent"] for e in events}, {"Hook\ufffdAgent"})
                self.assertLess(int(received[0][2]), int(received[1][2]))  # in order
                for body, signature, _ in received:
                    expected = "sha256=" + hmac.new(b"s3cret-webhook-key", body, hashlib.sha256).hexdigest()
                    self.assertEqual(signature, expected)
                self.assertIn("not accepted (HTTP 500); retry in", relay.read_log())
            finally:
                relay.stop()
        finally:
            server.shutdown()


class HttpLimitsTest(unittest.TestCase):
    def test_body_header_and_rate_limits(self):
        with Relay(extra={"http": {"max_body_bytes": 2048, "max_header_bytes": 2048, "requests_per_minute": 60}}) as relay:
            self.assertEqual(relay.http("POST", "/u/x", "x" * 5000, {"Content-Type": "text/plain"})[0], 413)
            self.assertEqual(relay.http("GET", "/u/x", headers={"X-Big": "y" * 4000})[0], 431)
            codes = [relay.http("GET", "/u/not-a-token")[0] for _ in range(30)]
            self.assertIn(429, codes)  # /healthz is exempt (issue 11): test_http_exemptions.py


if __name__ == "__main__":
    unittest.main()
