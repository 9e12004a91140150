"""Bounces and complaints through the real relay (docs/feedback.md): VERP
senders, DSNs mailed back with smtplib, in-session refusals from an SMTP
upstream, ARF complaints, and what must never happen (open relay, forged
reports)."""

import os
import re
import smtplib
import tempfile
import unittest

from fake_ses import FakeSes, make_ca, make_server_cert
from relay import Relay, wait_until

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
BASE_URL = "https://unsub.example.com"
VERP_DOMAIN = "bounces.example.com"
FBL = "fbl@example.com"
FEEDBACK = {"return_path_domain": VERP_DOMAIN, "complaint_addresses": [FBL], "forward_to_sender": True}


def campaign(email_id, launch, to="list@example.org"):
    return (f"From: News <news@example.com>\r\nTo: {to}\r\nSubject: news {launch}\r\n"
            f"Message-ID: <c-{launch}@example.com>\r\nX-Campaign-Id: {email_id}\r\n"
            f"X-Launch-List-Id: {launch}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hello.\r\n\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n").encode()


TRANSACTIONAL = (b"From: Shop <shop@example.com>\r\nTo: someone@example.org\r\nSubject: your receipt\r\n"
                 b"Message-ID: <receipt-1@example.com>\r\n\r\nThanks for your order.\r\n")


def send(port, rcpts, data, sender="news@example.com"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, rcpts, data)


def dsn(rcpt, status="5.1.1", action="failed", diagnostic="550 5.1.1 <{rcpt}>: Recipient address rejected"):
    diagnostic = diagnostic.format(rcpt=rcpt)
    return (f"From: MAILER-DAEMON@mx.example.org\r\nTo: postmaster@{VERP_DOMAIN}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: news\r\n\r\n--B--\r\n").encode()


def arf(returned_headers, rcpt="redacted@example.org"):
    return ("From: feedbackloop@mailbox.example\r\nTo: " + FBL + "\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"
            "--F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
            "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: abuse\r\nUser-Agent: TestFBL/1.0\r\nVersion: 1\r\n"
            f"Original-Rcpt-To: {rcpt}\r\nSource-IP: 192.0.2.1\r\n\r\n"
            "--F\r\nContent-Type: text/rfc822-headers\r\n\r\n" + returned_headers + "\r\n--F--\r\n").encode()


def copies_to(relay, rcpt):
    out = []
    for path in relay.outbox_files():
        with open(path, "rb") as f:
            data = f.read()
        if re.search(rb"^Delivered-To: " + re.escape(rcpt.encode()) + rb"\r\n", data, re.M):
            out.append(data)
    return out


def verp_token(copy):
    m = re.match(rb"Return-Path: <b\+([A-Za-z0-9_-]+)@" + re.escape(VERP_DOMAIN.encode()) + rb">\r\n", copy)
    assert m, copy[:200]
    return m.group(1).decode()


def stats_row(relay, launch):
    out = relay.cli("stats", "--launch", launch)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    names = header.split()
    for row in rows:
        values = row.split()
        if launch in values:
            return dict(zip(names, values))
    raise AssertionError(f"no launch {launch} in {out.stdout}")


class FeedbackMailTest(unittest.TestCase):
    def relay(self, feedback=None, smtp=None, upstream=None):
        extra = {"unsubscribe": {"base_url": BASE_URL, "mailto_domain": "unsub.example.com"},
                 "feedback": dict(FEEDBACK, **(feedback or {}))}
        return Relay(extra=extra, smtp=smtp, upstream=upstream)

    def test_dsn_to_the_verp_address_suppresses_all_mail_and_is_forwarded(self):
        with self.relay() as relay:
            send(relay.port, ["gone@example.org", "fine@example.org"], campaign("501", "9001"))
            wait_until(lambda: copies_to(relay, "gone@example.org") and copies_to(relay, "fine@example.org"))
            token = verp_token(copies_to(relay, "gone@example.org")[0])
            self.assertNotEqual(token, verp_token(copies_to(relay, "fine@example.org")[0]))

            # The remote MX's bounce comes back to the VERP address, from the null sender.
            send(relay.port, [f"b+{token}@{VERP_DOMAIN}"], dsn("gone@example.org"), sender="")
            wait_until(lambda: "feedback: hard_bounce of <gone@example.org>" in relay.read_log(),
                       what="the hard bounce recorded")
            self.assertIn("suppressed for all mail (hard_bounce", relay.read_log())
            # forward_to_sender: the report goes on to the launch's envelope sender, from <>.
            forwarded = wait_until(lambda: copies_to(relay, "news@example.com"), what="the forwarded DSN")
            self.assertTrue(forwarded[0].startswith(b"Return-Path: <>\r\n"))
            self.assertIn(b"Final-Recipient: rfc822; gone@example.org", forwarded[0])

            # The next campaign and a transactional message skip the bounced address only.
            send(relay.port, ["gone@example.org", "fine@example.org"], campaign("502", "9002"))
            send(relay.port, ["gone@example.org"], TRANSACTIONAL, sender="shop@example.com")
            wait_until(lambda: len(copies_to(relay, "fine@example.org")) == 2, what="fine's second copy")
            wait_until(lambda: relay.read_log().count("to=<gone@example.org>, delay=") >= 2,
                       what="two suppressed lines")
            self.assertEqual(len(copies_to(relay, "gone@example.org")), 1)
            self.assertRegex(relay.read_log(), r"to=<gone@example.org>, delay=\d+, status=suppressed \(hard_bounce")
            row = stats_row(relay, "9001")
            self.assertEqual(row["hard_bounced"], "1")

            # The same DSN mailed again counts once.
            send(relay.port, [f"b+{token}@{VERP_DOMAIN}"], dsn("gone@example.org"), sender="")
            wait_until(lambda: "already recorded" in relay.read_log(), what="the duplicate noticed")
            self.assertEqual(stats_row(relay, "9001")["hard_bounced"], "1")

    def test_delayed_dsn_is_a_soft_bounce_counted_toward_the_limit(self):
        with self.relay(feedback={"soft_bounce_limit": 2, "forward_to_sender": False}) as relay:
            for n, launch in enumerate(("9101", "9102"), start=1):
                send(relay.port, ["full@example.org"], campaign("511", launch))
                wait_until(lambda: len(copies_to(relay, "full@example.org")) == n)
                newest = max(copies_to(relay, "full@example.org"), key=lambda c: launch.encode() in c)
                send(relay.port, [f"b+{verp_token(newest)}@{VERP_DOMAIN}"],
                     dsn("full@example.org", "4.2.2", "delayed", "452 4.2.2 Mailbox full"), sender="")
                wait_until(lambda: relay.read_log().count("feedback: soft_bounce of <full@example.org>") == n,
                           what=f"soft bounce {n}")
            self.assertIn("suppressed for all mail (soft_bounce, 2 of limit)", relay.read_log())
            send(relay.port, ["full@example.org"], campaign("511", "9103"))
            wait_until(lambda: "status=suppressed (soft_bounce" in relay.read_log(), what="the third copy suppressed")
            self.assertEqual(len(copies_to(relay, "full@example.org")), 2)

    def test_invalid_verp_token_is_refused_at_rcpt(self):
        with self.relay() as relay, smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
            s.ehlo("mx.example.org")
            s.mail("")
            code, text = s.rcpt(f"b+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@{VERP_DOMAIN}")
            self.assertEqual(code, 550)
            self.assertIn(b"5.1.1", text)

    def test_feedback_addresses_from_outside_never_relay(self):
        # 127.0.0.1 is outside allow_networks here: an Internet MTA.
        with self.relay(smtp={"allow_networks": ["192.0.2.0/24"]}) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.ehlo("mx.example.org")
                s.mail("")
                self.assertEqual(s.rcpt("victim@elsewhere.example")[0], 554)
                self.assertEqual(s.rcpt(f"fbl@{VERP_DOMAIN}")[0], 554)  # not a feedback address
                self.assertEqual(s.rcpt(f"b+x@elsewhere.example")[0], 554)
                self.assertEqual(s.rcpt(FBL)[0], 250)
                # Unredacted, no token of ours: only the victim's address (issue 22).
                s.data(arf("To: <victim@elsewhere.example>\r\nSubject: hello\r\n", rcpt="victim@elsewhere.example"))
            wait_until(lambda: f"feedback: to=<{FBL}>:" in relay.read_log(), what="the report processed")
            wait_until(lambda: not relay.spool_ids(), what="the report settled")
            self.assertIn("by address only, client not in feedback.trusted_networks: unverified", relay.read_log())
            self.assertNotIn("feedback: complaint of", relay.read_log())
            shown = relay.cli("contact", "show", "victim@elsewhere.example")
            self.assertEqual(shown.returncode, 1, f"a contact was made for the named address: {shown.stdout}")
            self.assertEqual(relay.outbox_files(), [])  # nothing was relayed (or forwarded) anywhere

    def test_arf_with_only_the_list_unsubscribe_header_unsubscribes_from_all_campaigns(self):
        with self.relay(feedback={"forward_to_sender": False}) as relay:
            send(relay.port, ["angry@example.org", "calm@example.org"], campaign("521", "9201"))
            wait_until(lambda: copies_to(relay, "angry@example.org") and copies_to(relay, "calm@example.org"))
            copy = copies_to(relay, "angry@example.org")[0].decode()
            list_unsubscribe = re.search(r"^List-Unsubscribe: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", copy, re.M).group(0)
            # RFC 6590 redaction: the reporter kept only the List-Unsubscribe header.
            send(relay.port, [FBL], arf(list_unsubscribe + "\r\n"), sender="")
            wait_until(lambda: "feedback: complaint of <angry@example.org>" in relay.read_log(),
                       what="the complaint recorded")
            self.assertIn("unsubscribed from all campaigns (complaint)", relay.read_log())
            # Another campaign skips angry@, transactional mail still reaches it.
            send(relay.port, ["angry@example.org", "calm@example.org"], campaign("522", "9202"))
            send(relay.port, ["angry@example.org"], TRANSACTIONAL, sender="shop@example.com")
            wait_until(lambda: len(copies_to(relay, "calm@example.org")) == 2)
            wait_until(lambda: len(copies_to(relay, "angry@example.org")) == 2, what="the transactional copy")
            self.assertTrue(any(b"your receipt" in c for c in copies_to(relay, "angry@example.org")))
            self.assertRegex(relay.read_log(), r"to=<angry@example.org>, delay=\d+, status=suppressed \(complaint")
            self.assertEqual(stats_row(relay, "9201")["complaints"], "1")

    def test_forged_report_changes_nothing(self):
        with self.relay(feedback={"forward_to_sender": False}) as relay:
            send(relay.port, ["target@example.org"], campaign("531", "9301"))
            copy = wait_until(lambda: copies_to(relay, "target@example.org"))[0].decode()
            url = re.search(r"<(https://unsub\.example\.com/u/([A-Za-z0-9_-]+))>", copy)
            token = url.group(2)
            forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            send(relay.port, [FBL], arf(f"List-Unsubscribe: <{BASE_URL}/u/{forged}>\r\n",
                                        rcpt="target@example.org"), sender="")
            wait_until(lambda: "arf whose tokens do not verify" in relay.read_log(), what="the forged report")
            send(relay.port, ["target@example.org"], campaign("532", "9302"))
            wait_until(lambda: len(copies_to(relay, "target@example.org")) == 2, what="the next campaign delivered")
            self.assertNotIn("status=suppressed", relay.read_log())


class InSessionRefusalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.mkdtemp(prefix="unsubrelay-fb-")
        ca_key, cls.ca = make_ca(cls.files, "ca")
        cls.cert, cls.key = make_server_cert(cls.files, ca_key, cls.ca)
        for name, value in (("user", "AKIATEST"), ("password", "ses-secret")):
            with open(os.path.join(cls.files, name), "w") as f:
                f.write(value + "\n")

    def test_550_5_1_1_is_a_hard_bounce_and_550_5_7_1_is_blocked(self):
        with FakeSes(self.cert, self.key) as ses:
            ses.handler.rcpt_rules["gone@example.org"] = ["550 5.1.1 Mailbox does not exist"]
            ses.handler.rcpt_rules["picky@example.org"] = ["550 5.7.1 Message rejected as spam"]
            upstream = {"kind": "ses", "host": "localhost", "port": ses.port, "tls": "starttls", "ca_file": self.ca,
                        "username_file": os.path.join(self.files, "user"),
                        "password_file": os.path.join(self.files, "password")}
            extra = {"unsubscribe": {"base_url": BASE_URL}, "feedback": {"return_path_domain": VERP_DOMAIN}}
            with Relay(extra=extra, upstream=upstream) as relay:
                rcpts = ["gone@example.org", "picky@example.org", "fine@example.org"]
                send(relay.port, rcpts, campaign("541", "9401"))
                wait_until(lambda: "feedback: blocked of <picky@example.org>" in relay.read_log() and
                           "feedback: hard_bounce of <gone@example.org>" in relay.read_log(), what="both refusals")
                fine = wait_until(lambda: [m for m in ses.handler.messages if "fine@example.org" in m.rcpt_tos])
                # VERP: the upstream saw the copy's own bounce address as MAIL FROM.
                self.assertRegex(fine[0].mail_from, r"^b\+[A-Za-z0-9_-]+@bounces\.example\.com$")
                row = stats_row(relay, "9401")
                self.assertEqual((row["hard_bounced"], row["blocked"]), ("1", "1"))

                send(relay.port, rcpts, campaign("542", "9402"))
                wait_until(lambda: len([m for m in ses.handler.messages if "fine@example.org" in m.rcpt_tos]) == 2,
                           what="fine's second copy")
                wait_until(lambda: relay.read_log().count("to=<picky@example.org>, relay=") == 2,
                           what="picky tried again (blocked never suppresses)")
                self.assertRegex(relay.read_log(), r"to=<gone@example.org>, delay=\d+, status=suppressed \(hard_bounce")


if __name__ == "__main__":
    unittest.main()
