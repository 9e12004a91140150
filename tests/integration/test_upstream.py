"""Delivery to an SMTP upstream that behaves like Amazon SES (tests/integration/fake_ses.py)."""

import base64
import os
import re
import smtplib
import tempfile
import time
import unittest

from fake_ses import FakeSes, make_ca, make_server_cert
from relay import Relay, free_port, wait_until

BODY = ("From: <news@example.com>\r\nTo: <list@example.org>\r\nSubject: upstream test\r\n"
        "X-SES-CONFIGURATION-SET: marketing\r\nX-SES-MESSAGE-TAGS: team=growth\r\n\r\n"
        ".leading dot\r\nbody\r\n")


def send(port, rcpts, sender="news@example.com", body=BODY):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, rcpts, body.encode())


class UpstreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.mkdtemp(prefix="unsubrelay-ses-")
        ca_key, cls.ca = make_ca(cls.files, "good")
        cls.cert, cls.key = make_server_cert(cls.files, ca_key, cls.ca)
        _, cls.wrong_ca = make_ca(cls.files, "wrong")
        cls.username_file = os.path.join(cls.files, "ses-username")
        cls.password_file = os.path.join(cls.files, "ses-password")
        with open(cls.username_file, "w") as f:
            f.write("AKIATEST\n")
        with open(cls.password_file, "w") as f:
            f.write("ses-secret\n")

    def relay_for(self, port, kind="ses", tls="starttls", ca=None, extra=None, spool=None):
        upstream = {"kind": kind, "host": "localhost", "port": port, "tls": tls, "ca_file": ca or self.ca,
                    "username_file": self.username_file, "password_file": self.password_file,
                    "max_connections": 2}
        upstream.update(extra or {})
        return Relay(upstream=upstream, spool=spool)

    def assert_no_secret_in(self, log):
        for secret in ("ses-secret", base64.b64encode(b"\0AKIATEST\0ses-secret").decode(),
                       base64.b64encode(b"ses-secret").decode()):
            self.assertNotIn(secret, log)

    def test_starttls_auth_delivery_records_the_ses_message_id(self):
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port) as relay:
            send(relay.port, ["a@example.org", "b@example.org"])
            wait_until(lambda: len(ses.handler.messages) == 2, what="2 copies at the upstream")
            wait_until(lambda: relay.spool_ids() == [], what="the spool to empty")
            log = relay.read_log()
            for m in ses.handler.messages:
                self.assertEqual(m.mail_from, "news@example.com")
                self.assertEqual(len(m.rcpt_tos), 1)
                # The content as sent (dot-unstuffed on the far side), X-SES headers passed through.
                self.assertIn(b"X-SES-CONFIGURATION-SET: marketing\r\n", m.content)
                self.assertIn(b"X-SES-MESSAGE-TAGS: team=growth\r\n", m.content)
                self.assertTrue(m.content.endswith(b"\r\n.leading dot\r\nbody\r\n"), m.content[-60:])
                self.assertRegex(log, rf"to=<{re.escape(m.rcpt_tos[0])}>, relay=localhost\[127\.0\.0\.1\]:{ses.port}, "
                                      rf"delay=\d+, status=sent \(250 Ok {m.message_id}\), upstream_id={m.message_id}")
            self.assert_no_secret_in(log)

    def test_ses_campaign_ids_become_message_tags(self):
        campaign = BODY.replace("X-SES-MESSAGE-TAGS: team=growth\r\n",
                                "X-SES-MESSAGE-TAGS: team=growth\r\nX-Campaign-Id: 222222222\r\n"
                                "X-Launch-List-Id: 111111111\r\n")
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port) as relay:
            send(relay.port, ["a@example.org"], body=campaign)
            wait_until(lambda: len(ses.handler.messages) == 1, what="the copy at the upstream")
            content = ses.handler.messages[0].content
            self.assertIn(b"X-SES-MESSAGE-TAGS: team=growth, email_id=222222222, launch_list_id=111111111\r\n",
                          content)
            self.assertEqual(content.count(b"X-SES-MESSAGE-TAGS"), 1)
            self.assertIn(b"X-SES-CONFIGURATION-SET: marketing\r\n", content)
            self.assertNotIn(b"X-Campaign-Id", content)

    def test_implicit_tls(self):
        with FakeSes(self.cert, self.key, implicit=True) as ses, \
                self.relay_for(ses.port, kind="smtp", tls="implicit") as relay:
            send(relay.port, ["a@example.org"])
            wait_until(lambda: len(ses.handler.messages) == 1, what="the copy at the upstream")
            self.assertNotIn("upstream_id=", relay.read_log())  # kind smtp records no SES id

    def test_wrong_ca_defers_with_a_clear_reason(self):
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port, ca=self.wrong_ca) as relay:
            send(relay.port, ["a@example.org"])
            wait_until(lambda: "status=deferred" in relay.read_log(), what="a deferral")
            log = relay.read_log()
            self.assertIn("certificate verification failed", log)
            self.assertEqual(ses.handler.messages, [])
            self.assertEqual(len(relay.spool_ids()), 1)

    def test_auth_failure_defers_and_never_logs_the_password(self):
        with FakeSes(self.cert, self.key, users={"AKIATEST": "another-secret"}) as ses, \
                self.relay_for(ses.port) as relay:
            send(relay.port, ["a@example.org"])
            wait_until(lambda: "status=deferred" in relay.read_log(), what="a deferral")
            log = relay.read_log()
            self.assertIn("authentication failed at localhost[127.0.0.1]", log)
            self.assertEqual(ses.handler.messages, [])
            self.assertGreaterEqual(ses.handler.auth_failures, 1)
            self.assert_no_secret_in(log)

    def test_no_auth_over_plaintext(self):
        """With tls: none the relay would send AUTH in clear; SES-like servers refuse it before TLS."""
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port, tls="none") as relay:
            send(relay.port, ["a@example.org"])
            wait_until(lambda: "status=deferred" in relay.read_log(), what="a deferral")
            self.assertIn("offers no AUTH PLAIN or LOGIN", relay.read_log())
            self.assertEqual(ses.handler.auth_failures, 0)
            self.assertEqual(ses.handler.messages, [])

    def test_throttling_is_a_deferral_and_nothing_is_lost(self):
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port) as relay:
            throttled = "454 Throttling failure: Maximum sending rate exceeded."
            ses.handler.rcpt_rules["slow@example.org"] = [throttled, throttled]
            send(relay.port, ["slow@example.org", "fast@example.org"])
            wait_until(lambda: len(ses.handler.messages) == 2, timeout=30, what="both copies after retries")
            self.assertEqual(relay.read_log().count("status=deferred (454 Throttling failure"), 2)
            wait_until(lambda: relay.spool_ids() == [], what="the spool to empty")

    def test_rate_limit_paces_sends(self):
        with FakeSes(self.cert, self.key) as ses, \
                self.relay_for(ses.port, extra={"max_messages_per_second": 4}) as relay:
            start = time.monotonic()
            send(relay.port, [f"r{i}@example.org" for i in range(12)])
            wait_until(lambda: len(ses.handler.messages) == 12, timeout=30, what="12 copies")
            elapsed = time.monotonic() - start
            # A burst of 4, then 8 more at 4 per second: at least 2 seconds.
            self.assertGreaterEqual(elapsed, 1.9)
            print(f"\n12 copies at max_messages_per_second 4: {elapsed:.2f} s")

    def test_permanent_refusal_bounces_with_a_dsn_through_the_upstream(self):
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port) as relay:
            ses.handler.rcpt_rules["nobody@example.org"] = ["550 5.1.1 Mailbox does not exist"]
            send(relay.port, ["nobody@example.org", "ok@example.org"], sender="owner@example.com")
            wait_until(lambda: len(ses.handler.messages) == 2, what="the copy and the bounce")
            bounce = [m for m in ses.handler.messages if m.mail_from == "<>" or m.mail_from == ""][0]
            self.assertEqual(bounce.rcpt_tos, ["owner@example.com"])
            dsn = bounce.content.decode()
            self.assertIn("Content-Type: multipart/report; report-type=delivery-status;", dsn)
            self.assertIn("Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1", dsn)
            self.assertIn("Diagnostic-Code: smtp; 550 5.1.1 Mailbox does not exist", dsn)
            self.assertIn("Subject: upstream test", dsn)
            self.assertRegex(relay.read_log(), r"to=<nobody@example.org>, .*status=bounced \(550 5.1.1")

    def test_temporary_failures_and_a_dropped_connection_are_retried(self):
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port) as relay:
            ses.handler.rcpt_rules["flaky@example.org"] = ["421 4.3.0 Service unavailable, closing"]
            ses.handler.data_rules = ["drop"]
            send(relay.port, ["flaky@example.org"])
            wait_until(lambda: len(ses.handler.messages) == 1, timeout=30, what="delivery after retries")
            log = relay.read_log()
            self.assertIn("status=deferred (421 4.3.0 Service unavailable", log)
            self.assertIn("status=deferred (451 4.4.2 lost connection with localhost", log)
            wait_until(lambda: relay.spool_ids() == [], what="the spool to empty")

    def test_retry_after_the_upstream_comes_back(self):
        port = free_port()
        relay = self.relay_for(port).start()
        try:
            send(relay.port, ["a@example.org"])
            wait_until(lambda: "status=deferred" in relay.read_log(), what="a deferral")
            self.assertRegex(relay.read_log(), rf"connect to localhost:{port}: Connection refused")
            ses = FakeSes(self.cert, self.key)
            ses.port = port
            ses.start()
            try:
                wait_until(lambda: len(ses.handler.messages) == 1, timeout=30, what="delivery after the outage")
                wait_until(lambda: relay.spool_ids() == [], what="the spool to empty")
            finally:
                ses.stop()
        finally:
            relay.stop()

    def test_connections_are_reused(self):
        with FakeSes(self.cert, self.key) as ses, self.relay_for(ses.port) as relay:
            for i in range(10):
                send(relay.port, [f"r{i}@example.org"])
            wait_until(lambda: len(ses.handler.messages) == 10, what="10 messages")
            self.assertLessEqual(ses.handler.connections, 2)  # max_connections is 2
            print(f"\n10 messages over {ses.handler.connections} upstream connection(s)")


if __name__ == "__main__":
    unittest.main()
