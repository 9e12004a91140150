"""POST /feedback/ses through the real relay: SNS deliveries signed here
(SignatureVersion 2) with a certificate a local HTTPS server serves under a
test CA (https_fixture.py), a campaign sent through a fake SES (fake_ses.py)
so the SES message ids are real ones the relay recorded."""

import base64
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

from fake_ses import FakeSes, make_sns_files
from relay import Relay, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"


def sns_time(offset=0):
    """An SNS Timestamp, offset seconds from now."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + offset))


def campaign(email_id, launch):
    return (f"From: News <news@example.com>\r\nTo: list@example.org\r\nSubject: news {launch}\r\n"
            f"X-Campaign-Id: {email_id}\r\nX-Launch-List-Id: {launch}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain\r\n\r\nHello.\r\n\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n").encode()


class SesFeedbackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.mkdtemp(prefix="unsubrelay-sns-")
        cls.ca, cls.cert, cls.key, cls.sign_key, cls.sign_cert = make_sns_files(cls.files)
        for name, value in (("user", "AKIATEST"), ("password", "ses-secret")):
            with open(os.path.join(cls.files, name), "w") as f:
                f.write(value + "\n")
        cls.port_file = os.path.join(cls.files, "https.port")
        cls.https = subprocess.Popen([sys.executable, os.path.join(HERE, "https_fixture.py"), cls.cert, cls.key,
                                      cls.port_file, cls.sign_cert])
        cls.https_port = int(wait_until(lambda: os.path.exists(cls.port_file) and open(cls.port_file).read()))
        cls.base = f"https://localhost:{cls.https_port}"

    @classmethod
    def tearDownClass(cls):
        cls.https.kill()
        cls.https.wait()

    def fetched(self):
        with open(self.port_file + ".log") as f:
            return f.read().splitlines()

    def sign(self, fields):
        """SignatureVersion 2: SHA256withRSA over AWS's canonical string."""
        names = (["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
                 if fields["Type"] == "Notification" else
                 ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"])
        text = "".join(f"{n}\n{fields[n]}\n" for n in names if n in fields)
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.sign_key], input=text.encode(),
                             check=True, capture_output=True).stdout
        fields["SignatureVersion"] = "2"
        fields["Signature"] = base64.b64encode(sig).decode()
        return fields

    def fetched_lines(self, prefix):
        return sum(line.startswith(prefix) for line in self.fetched())

    def envelope(self, kind, message, topic=TOPIC, cert_url=None, timestamp=None, **more):
        fields = {"Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": topic, "Message": message,
                  "Timestamp": timestamp or sns_time(),
                  "SigningCertURL": cert_url or f"{self.base}/certs/cert.pem", **more}
        return self.sign(fields)

    def notification(self, body, **kw):
        return self.envelope("Notification", json.dumps(body), **kw)

    def post(self, relay, fields):
        status, _, body = relay.http("POST", "/feedback/ses", json.dumps(fields).encode(),
                                     {"Content-Type": "text/plain; charset=UTF-8",
                                      "x-amz-sns-message-type": fields["Type"]})
        return status

    def bounce(self, message_id, address, feedback_id, bounce_type="Permanent"):
        return {"notificationType": "Bounce",
                "bounce": {"bounceType": bounce_type, "bounceSubType": "General", "feedbackId": feedback_id,
                           "bouncedRecipients": [{"emailAddress": address, "action": "failed", "status": "5.1.1",
                                                  "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                           "timestamp": "2026-11-29T12:00:00.000Z"},
                "mail": {"messageId": message_id, "source": "news@example.com", "destination": [address]}}

    def test_subscription_bounce_complaint_replay_and_forgeries(self):
        fetched_before = len(self.fetched())
        with FakeSes(self.cert, self.key) as ses:
            upstream = {"kind": "ses", "host": "localhost", "port": ses.port, "tls": "starttls", "ca_file": self.ca,
                        "username_file": os.path.join(self.files, "user"),
                        "password_file": os.path.join(self.files, "password")}
            extra = {"unsubscribe": {"base_url": "https://unsub.example.com"},
                     "feedback": {"ses_sns": {"topic_arns": [TOPIC], "cert_url_prefixes": [f"{self.base}/"],
                                              "ca_file": self.ca}}}
            with Relay(extra=extra, upstream=upstream) as relay:
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                    s.sendmail("news@example.com", ["gone@example.org", "angry@example.org"],
                               campaign("601", "9601"))
                wait_until(lambda: len(ses.handler.messages) == 2, what="both copies at SES")
                ids = {m.rcpt_tos[0]: m.message_id for m in ses.handler.messages}
                # The sends (with SES's message ids) are recorded before the queue file goes.
                wait_until(lambda: ": removed" in relay.read_log(), what="the campaign settled")

                # The subscription is confirmed by fetching SubscribeURL (allow-listed).
                confirm = self.envelope("SubscriptionConfirmation", "You have chosen to subscribe...",
                                        Token="tok123", SubscribeURL=f"{self.base}/confirm?Token=tok123")
                self.assertEqual(self.post(relay, confirm), 200)
                self.assertIn("/confirm?Token=tok123", self.fetched())

                # A permanent bounce, matched through the SES message id recorded at send time.
                bounce = self.notification(self.bounce(ids["gone@example.org"], "gone@example.org", "fb-1"))
                self.assertEqual(self.post(relay, bounce), 200)
                wait_until(lambda: "feedback: hard_bounce of <gone@example.org>, status=5.1.1, source=ses, "
                           "launch_list_id=9601" in relay.read_log(), what="the SES bounce recorded")
                # SNS retries: the same notification again counts once.
                self.assertEqual(self.post(relay, bounce), 200)
                wait_until(lambda: "already recorded" in relay.read_log(), what="the replay noticed")
                stats = relay.cli("stats", "--launch", "9601")
                header, row = stats.stdout.splitlines()[:2]
                counts = dict(zip(header.split(), row.split()))
                self.assertEqual(counts["hard_bounced"], "1")

                complaint = self.notification({
                    "notificationType": "Complaint",
                    "complaint": {"feedbackId": "fb-2", "complaintFeedbackType": "abuse",
                                  "complainedRecipients": [{"emailAddress": "angry@example.org"}],
                                  "timestamp": "2026-11-29T12:00:00.000Z"},
                    "mail": {"messageId": ids["angry@example.org"], "destination": ["angry@example.org"]}})
                self.assertEqual(self.post(relay, complaint), 200)
                wait_until(lambda: "feedback: complaint of <angry@example.org>" in relay.read_log())

                # Forgeries: 403 and nothing recorded, nothing fetched from an unlisted URL.
                tampered = self.notification(self.bounce(ids["angry@example.org"], "angry@example.org", "fb-3"))
                tampered["Message"] = tampered["Message"].replace("fb-3", "fb-4")
                self.assertEqual(self.post(relay, tampered), 403)
                unlisted_topic = self.notification(self.bounce("x", "other@example.org", "fb-5"),
                                                   topic="arn:aws:sns:us-east-1:666:evil")
                self.assertEqual(self.post(relay, unlisted_topic), 403)
                evil_cert = f"https://127.0.0.1:{self.https_port}/certs/cert.pem"
                self.assertEqual(self.post(relay, self.notification(self.bounce("x", "other@example.org", "fb-6"),
                                                                    cert_url=evil_cert)), 403)
                evil_confirm = self.envelope("SubscriptionConfirmation", "subscribe", Token="t2",
                                             SubscribeURL="https://evil.example/confirm?Token=t2")
                self.assertEqual(self.post(relay, evil_confirm), 403)
                self.assertEqual(self.post(relay, {"Type": "Notification"}), 400)
                log = relay.read_log()
                self.assertNotIn("of <other@example.org>", log)
                self.assertNotIn("hard_bounce of <angry@example.org>", log)
                self.assertEqual([line for line in self.fetched()[fetched_before:] if not line.startswith("#")],
                                 ["/certs/cert.pem", "/confirm?Token=tok123"])
                status, _, metrics = relay.http("GET", "/metrics")
                self.assertIn(b'unsubrelay_feedback_total{kind="hard_bounce",source="ses"} 1', metrics)
                self.assertIn(b'unsubrelay_feedback_total{kind="complaint",source="ses"} 1', metrics)
                self.assertIn(b"unsubrelay_sent_after_optout_total 0", metrics)

                # The next campaign skips the bounced and the complaining contact.
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                    s.sendmail("news@example.com", ["gone@example.org", "angry@example.org", "new@example.org"],
                               campaign("602", "9602"))
                wait_until(lambda: any("new@example.org" in m.rcpt_tos for m in ses.handler.messages))
                wait_until(lambda: "status=suppressed (complaint" in relay.read_log() and
                           "status=suppressed (hard_bounce" in relay.read_log(), what="both suppressed")
                self.assertEqual(len(ses.handler.messages), 3)

    def sns_relay(self, **sns):
        extra = {"unsubscribe": {"base_url": "https://unsub.example.com"},
                 "feedback": {"ses_sns": {"topic_arns": [TOPIC], "cert_url_prefixes": [f"{self.base}/"],
                                          "ca_file": self.ca, **sns}}}
        return Relay(extra=extra)

    def one_click_link(self, relay):
        """A campaign copy's one-click path (/u/TOKEN), through the relay's directory upstream."""
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
            s.sendmail("news@example.com", ["reader@example.org"], campaign("701", "9701"))
        [path] = relay.wait_for_outbox(1)
        with open(path, "rb") as f:
            return re.search(rb"List-Unsubscribe: <https://unsub.example.com(/u/[A-Za-z0-9_-]+)>", f.read()).group(1)

    def test_hanging_certificate_fetches_leave_one_click_and_healthz_free(self):
        """Forty notifications whose certificate URLs never answer (allow-listed: an attacker can make
        such URLs on the real SNS host too), more than the 16 HTTP handler threads. The fetches have a
        small pool of their own with a bounded queue: the rest are refused with 503 at once, and a
        one-click unsubscribe, /healthz and SMTP are answered promptly while the fetches hang."""
        with self.sns_relay(fetch_timeout_seconds=2) as relay:
            link = self.one_click_link(relay).decode()
            hanging_before = self.fetched_lines("/certs/hang")
            statuses = []
            # Signed first, so that the forty arrive together.
            deliveries = [self.notification(self.bounce(f"m{i}", f"h{i}@example.org", f"fb-h{i}"),
                                            cert_url=f"{self.base}/certs/hang?{uuid.uuid4()}") for i in range(40)]
            threads = [threading.Thread(target=lambda f=f: statuses.append(self.post(relay, f))) for f in deliveries]
            for t in threads:
                t.start()
            wait_until(lambda: self.fetched_lines("/certs/hang") - hanging_before >= 2, what="fetches hanging")
            started = time.monotonic()
            status, _, _ = relay.http("POST", link, "List-Unsubscribe=One-Click",
                                      {"Content-Type": "application/x-www-form-urlencoded"})
            one_click = time.monotonic() - started
            self.assertEqual(status, 200)
            started = time.monotonic()
            status, _, _ = relay.http("GET", "/healthz")
            healthz = time.monotonic() - started
            self.assertEqual(status, 200)
            started = time.monotonic()
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("shop@example.com", ["someone@example.org"], b"Subject: receipt\r\n\r\nThanks.\r\n")
            smtp = time.monotonic() - started
            for t in threads:
                t.join()
            self.assertLess(one_click, 2.0, "the one-click unsubscribe waited for the certificate fetches")
            self.assertLess(healthz, 2.0, "/healthz waited for the certificate fetches")
            self.assertLess(smtp, 2.0, "SMTP waited for the certificate fetches")
            # A fetch that failed is retried by SNS: 503, never 403 (SNS drops a 4xx for good).
            self.assertEqual(statuses, [503] * 40)
            self.assertLessEqual(self.fetched_lines("/certs/hang") - hanging_before, 6)
            log = relay.read_log()
            self.assertIn("too many fetches waiting", log)
            self.assertNotIn("of <h", log)

    def test_failed_fetch_is_remembered_and_cheap_checks_come_first(self):
        """A certificate URL that fails is fetched once, then remembered as failed: more deliveries
        naming it fetch nothing. A stale or future Timestamp, or an unknown SignatureVersion, is
        refused before any fetch."""
        with self.sns_relay() as relay:
            missing = f"/certs/missing-{uuid.uuid4()}.pem"
            connections = self.fetched().count("# connection")
            statuses = [self.post(relay, self.notification(self.bounce(f"x{i}", f"f{i}@example.org", f"fb-f{i}"),
                                                           cert_url=self.base + missing)) for i in range(5)]
            self.assertEqual(self.fetched().count(missing), 1)
            self.assertEqual(self.fetched().count("# connection") - connections, 1)
            # 503, not 403: SNS delivers again later (it drops a delivery answered with a 4xx).
            self.assertEqual(statuses, [503] * 5)

            unfetched = f"{self.base}/certs/cert.pem?never-{uuid.uuid4()}"
            stale = self.notification(self.bounce("s", "stale@example.org", "fb-s"), cert_url=unfetched,
                                      timestamp=sns_time(-86400 - 60))
            self.assertEqual(self.post(relay, stale), 403)
            ahead = self.notification(self.bounce("a", "ahead@example.org", "fb-a"), cert_url=unfetched,
                                      timestamp=sns_time(3600 + 300))
            self.assertEqual(self.post(relay, ahead), 403)
            version = self.notification(self.bounce("v", "version@example.org", "fb-v"), cert_url=unfetched)
            version["SignatureVersion"] = "3"
            self.assertEqual(self.post(relay, version), 403)
            self.assertNotIn(unfetched.split(str(self.https_port))[1], self.fetched())
            # A fresh copy of the same delivery is taken (the certificate is fetched then).
            fresh = self.notification(self.bounce("s", "stale@example.org", "fb-s"), cert_url=unfetched)
            self.assertEqual(self.post(relay, fresh), 200)
            log = relay.read_log()
            self.assertNotIn("of <ahead@example.org>", log)
            self.assertNotIn("of <version@example.org>", log)
            self.assertIn("Timestamp", log)

    def test_max_age_seconds_is_the_configured_replay_window(self):
        """feedback.ses_sns.max_age_seconds: 3600 refuses a two-hour-old delivery (403, nothing
        fetched) that the default one-day window would take."""
        with self.sns_relay(max_age_seconds=3600) as relay:
            unfetched = f"{self.base}/certs/cert.pem?never-{uuid.uuid4()}"
            old = self.notification(self.bounce("o", "old@example.org", "fb-o"), cert_url=unfetched,
                                    timestamp=sns_time(-7200))
            self.assertEqual(self.post(relay, old), 403)
            self.assertNotIn(unfetched.split(str(self.https_port))[1], self.fetched())
            self.assertIn("max_age_seconds 3600", relay.read_log())
            fresh = self.notification(self.bounce("o", "old@example.org", "fb-o"), cert_url=unfetched,
                                      timestamp=sns_time(-1800))
            self.assertEqual(self.post(relay, fresh), 200)

    def test_certificate_server_with_weak_ciphers_is_refused(self):
        """The fetcher uses the relay's TLS profile (docs/tls.md): a certificate server that only
        offers static-RSA or CBC suites is refused; the ECDHE-GCM one (the fixture's default) works."""
        for ciphers in ("AES256-SHA:AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"):
            with self.subTest(server=ciphers):
                port_file = os.path.join(self.files, f"weak-{uuid.uuid4()}.port")
                weak = subprocess.Popen([sys.executable, os.path.join(HERE, "https_fixture.py"), self.cert,
                                         self.key, port_file, self.sign_cert],
                                        env={**os.environ, "HTTPS_FIXTURE_CIPHERS": ciphers})
                try:
                    port = int(wait_until(lambda: os.path.exists(port_file) and open(port_file).read()))
                    base = f"https://localhost:{port}/"
                    extra = {"feedback": {"ses_sns": {"topic_arns": [TOPIC], "cert_url_prefixes": [base],
                                                      "ca_file": self.ca}}}
                    with Relay(extra=extra) as relay:
                        fields = self.notification(self.bounce("w", "weak@example.org", "fb-w"),
                                                   cert_url=base + "certs/cert.pem")
                        self.assertEqual(self.post(relay, fields), 503)
                        log = relay.read_log()
                        self.assertIn("TLS handshake failed", log)
                        self.assertNotIn("of <weak@example.org>", log)
                    with open(port_file + ".log") as f:
                        self.assertIn("# connection", f.read())  # it was tried, and refused
                finally:
                    weak.kill()
                    weak.wait()

if __name__ == "__main__":
    unittest.main()
