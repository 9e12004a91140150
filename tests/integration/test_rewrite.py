"""Per-recipient rewriting through the real relay: tokens, headers, footers, DKIM."""

import base64
import email
import email.policy
import os
import quopri
import re
import smtplib
import subprocess
import tempfile
import unittest

import dkim

from relay import RawClient, Relay, wait_until

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
BASE_URL = "https://unsub.example.com"
PLACEHOLDERS = ("*|UNSUBSCRIBE|*", "{{unsubscribe_url}}", "$cid$", "$llid$", "$uid$")


def sample(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def send(port, rcpts, data, sender="news@example.com"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, rcpts, data)


def copies(relay, count):
    files = relay.wait_for_outbox(count)
    out = {}
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        rcpt = re.search(rb"^Delivered-To: (.+)\r\n", data, re.M).group(1).decode()
        out[rcpt] = data
    return out


def unsubscribe_url(message):
    value = message["List-Unsubscribe"]
    return re.match(r"<(https://[^>]+)>", value).group(1)


class RewriteTest(unittest.TestCase):
    def relay(self, unsubscribe=None, dkim_entries=None):
        extra = {"unsubscribe": {"base_url": BASE_URL, "mailto_domain": "unsub.example.com",
                                 "list_id_domain": "lists.example.com"}}
        extra["unsubscribe"].update(unsubscribe or {})
        if dkim_entries:
            extra["dkim"] = dkim_entries
        return Relay(extra=extra)

    def test_three_recipients_get_their_own_links(self):
        original = sample("campaign-alternative-qp.eml")
        rcpts = ["a@example.org", "b@example.org", "c@example.org"]
        with self.relay() as relay:
            send(relay.port, rcpts, original)
            got = copies(relay, 3)
            self.assertEqual(sorted(got), rcpts)
            original_msg = email.message_from_bytes(original, policy=email.policy.default)
            original_pdf = [p for p in original_msg.walk() if p.get_content_type() == "application/pdf"][0]
            urls = set()
            for rcpt, data in got.items():
                msg = email.message_from_bytes(data, policy=email.policy.default)
                url = unsubscribe_url(msg)
                urls.add(url)
                self.assertTrue(url.startswith(BASE_URL + "/u/"))
                self.assertIn("<mailto:u+", msg["List-Unsubscribe"])
                self.assertEqual(msg["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
                self.assertEqual(msg["List-Id"], "<222222222.lists.example.com>")
                for gone in ("X-Campaign-Id", "X-Launch-List-Id", "DKIM-Signature"):
                    self.assertIsNone(msg[gone], gone)
                self.assertEqual(len(msg.get_all("List-Unsubscribe")), 1)  # the old one was replaced

                # The token decodes to this contact's uid, the campaign and the launch.
                verified = relay.cli("token", "verify", url)
                self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
                self.assertIn("email_id: 222222222", verified.stdout)
                self.assertIn("launch_list_id: 111111111", verified.stdout)
                uid = re.search(r"uid: (\S+)", verified.stdout).group(1)
                self.assertNotIn(rcpt, url)  # no readable address in the URL

                html = [p for p in msg.walk() if p.get_content_type() == "text/html"][0]
                self.assertEqual(html["Content-Transfer-Encoding"], "quoted-printable")
                raw = html.get_payload(decode=False)
                for line in raw.split("\n"):
                    self.assertLessEqual(len(line.rstrip("\r")), 76)
                decoded = quopri.decodestring(raw.encode()).decode("utf-8")
                self.assertIn(f'<a href="{url}">Unsubscribe</a>', decoded)
                self.assertIn(f"email_id=222222222&amp;launchlist_id=111111111&amp;uid={uid}", decoded)
                text = [p for p in msg.walk() if p.get_content_type() == "text/plain"][0].get_content()
                self.assertIn(url, text)
                for ph in PLACEHOLDERS:
                    self.assertNotIn(ph, decoded + text)
                pdf = [p for p in msg.walk() if p.get_content_type() == "application/pdf"][0]
                self.assertEqual(pdf.get_payload(decode=False), original_pdf.get_payload(decode=False))
                self.assertEqual(pdf.get_content(), original_pdf.get_content())

                # `token sign` prints a URL for the same contact (same uid).
                signed = relay.cli("token", "sign", "--recipient", rcpt, "--campaign", "222222222",
                                   "--launch", "111111111")
                self.assertEqual(signed.returncode, 0, signed.stderr)
                again = relay.cli("token", "verify", signed.stdout.strip())
                self.assertIn(f"uid: {uid}", again.stdout)
            self.assertEqual(len(urls), 3)
            self.assertIn("campaign email_id=222222222, launch_list_id=111111111, placeholders replaced",
                          relay.read_log())

    def test_tampered_url_is_refused_by_token_verify(self):
        with self.relay() as relay:
            url = relay.cli("token", "sign", "--recipient", "a@example.org", "--campaign", "1",
                            "--launch", "2").stdout.strip()
            token = url.rsplit("/", 1)[1]
            flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
            bad = relay.cli("token", "verify", flipped)
            self.assertNotEqual(bad.returncode, 0)
            self.assertRegex(bad.stdout, r"invalid: (token signature does not match|malformed token)")
            self.assertIn("invalid: malformed token", relay.cli("token", "verify", "x" * 10000).stdout)

    def test_transactional_mail_passes_byte_for_byte(self):
        original = sample("transactional.eml")
        with self.relay() as relay:
            send(relay.port, ["buyer@example.org"], original)
            data = list(copies(relay, 1).values())[0]
            # Return-Path, Delivered-To (directory upstream) and our Received header, then the original.
            body = data.split(b"\r\n", 2)[2]
            received_end = re.match(rb"Received: [^\r]*\r\n(\t[^\r]*\r\n)*", body).end()
            self.assertEqual(body[received_end:], original)

    def test_footer_when_the_campaign_has_no_placeholder(self):
        with self.relay() as relay:
            send(relay.port, ["a@example.org"], sample("campaign-no-placeholder.eml"))
            data = list(copies(relay, 1).values())[0]
            msg = email.message_from_bytes(data, policy=email.policy.default)
            url = unsubscribe_url(msg)
            self.assertIn(f"unsubscribe: {url}", msg.get_body(("plain",)).get_content())
            self.assertIn(f'<a href="{url}">unsubscribe</a>', msg.get_body(("html",)).get_content())
            self.assertIn("unsubscribe footer added", relay.read_log())

    def test_body_link_reject_refuses_at_smtp_time(self):
        with self.relay(unsubscribe={"body_link": "reject"}) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as s:
                with self.assertRaises(smtplib.SMTPDataError) as refused:
                    s.sendmail("news@example.com", ["a@example.org"], sample("campaign-no-placeholder.eml"))
                self.assertEqual(refused.exception.smtp_code, 550)
                self.assertIn(b"5.7.0", refused.exception.smtp_error)
                # With a placeholder the same relay accepts it.
                s.sendmail("news@example.com", ["a@example.org"], sample("campaign-alternative-qp.eml"))
            self.assertEqual(len(copies(relay, 1)), 1)
            # The copy is written before the message leaves the spool: wait for that, not race it.
            wait_until(lambda: relay.spool_ids() == [], what="the spool to empty (the refused message never in it)")

    def test_base64_html_part_is_rewritten_and_stays_base64(self):
        with self.relay() as relay:
            send(relay.port, ["a@example.org"], sample("campaign-base64-html.eml"))
            data = list(copies(relay, 1).values())[0]
            msg = email.message_from_bytes(data, policy=email.policy.default)
            self.assertEqual(msg["Content-Transfer-Encoding"], "base64")
            html = msg.get_content()
            self.assertIn(f'<a href="{unsubscribe_url(msg)}">Se d\u00e9sabonner</a>', html)
            self.assertNotIn("$uid$", html)

    def test_control_characters_cannot_add_header_lines(self):
        with self.relay() as relay:
            for rcpt in (b"a@example.org\rX-Injected: 1", b"a\x01@example.org", b"a@example.org\x00",
                         b"a@exa\tmple.org"):
                c = RawClient(relay.port)
                c.reply()
                c.command("EHLO client.test")
                c.command("MAIL FROM:<news@example.com>")
                c.send(b"RCPT TO:<" + rcpt + b">\r\n")
                code, text = c.reply()
                self.assertGreaterEqual(code, 500, repr(rcpt))
                c.close()
            self.assertEqual(relay.outbox_files(), [])

    def test_dkim_signatures_verify_with_an_independent_verifier(self):
        keys = tempfile.mkdtemp(prefix="unsubrelay-dkim-")
        rsa_key, ed_key = os.path.join(keys, "rsa.pem"), os.path.join(keys, "ed.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", rsa_key], check=True, capture_output=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", ed_key], check=True,
                       capture_output=True)

        def public_der(path):
            return subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"], check=True,
                                  capture_output=True).stdout

        records = {
            b"rsa1._domainkey.example.com.": b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der(rsa_key)),
            b"ed1._domainkey.example.com.": b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public_der(ed_key)[-32:]),
        }

        def dns(name, timeout=5):
            return records.get(name if name.endswith(b".") else name + b".")

        entries = [{"domain": "example.com", "selector": "rsa1", "key_file": rsa_key, "algorithm": "rsa-sha256"},
                   {"domain": "example.com", "selector": "ed1", "key_file": ed_key, "algorithm": "ed25519-sha256"}]
        with self.relay(dkim_entries=entries) as relay:
            send(relay.port, ["a@example.org", "b@example.org"], sample("campaign-alternative-qp.eml"))
            for rcpt, data in copies(relay, 2).items():
                # What the upstream receives: the copy without the directory upstream's delivery headers.
                message = data.split(b"\r\n", 2)[2]
                signatures = re.findall(rb"^DKIM-Signature: [^\r]*", message, re.M)
                self.assertEqual(len(signatures), 2)
                for sig in signatures:
                    self.assertIn(b"c=relaxed/relaxed", sig)
                    self.assertIn(b"h=from:to:subject:date:message-id:mime-version:content-type:"
                                  b"list-unsubscribe:list-unsubscribe-post;", sig)
                verifier = dkim.DKIM(message)
                for idx in range(2):
                    self.assertTrue(verifier.verify(idx=idx, dnsfunc=dns), f"{rcpt}: signature {idx} failed")
                # Tampering with the one-click header breaks the signature (RFC 8058 §4).
                tampered = message.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                           b"List-Unsubscribe-Post: List-Unsubscribe=Nope")
                self.assertFalse(dkim.DKIM(tampered).verify(idx=0, dnsfunc=dns))


if __name__ == "__main__":
    unittest.main()
