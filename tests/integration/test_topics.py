"""Topics in tokens and mail through the real relay (issue 13, point 3 and 5):
the topic header, tokens that carry the topic, tokens signed before topics
existed, page_url body links, and a DKIM-signed Feedback-ID."""

import base64
import email
import email.policy
import os
import re
import smtplib
import subprocess
import tempfile
import unittest

import dkim

from relay import Relay, wait_until

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
BASE_URL = "https://unsub.example.com"
PAGE_URL = "https://www.example.com/unsubscribe.html"
TOPICS = [{"id": "newsletter", "name": "Weekly newsletter"}, {"id": "offers", "name": "Offers and promotions"}]


def campaign(topic=None, body="Leave: *|UNSUBSCRIBE|*", email_id="222222222", launch="111111111"):
    topic_line = f"X-Topic: {topic}\r\n" if topic else ""
    return (f"From: news@example.com\r\nTo: list@example.org\r\nSubject: offers\r\nX-Campaign-Id: {email_id}\r\n"
            f"X-Launch-List-Id: {launch}\r\n{topic_line}\r\n{body}\r\n").encode()


def send(port, rcpts, data):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("news@example.com", rcpts, data)


def delivered(relay, count):
    out = []
    for path in relay.wait_for_outbox(count):
        with open(path, "rb") as f:
            out.append(f.read())
    return out


class TopicMailTest(unittest.TestCase):
    def relay(self, **unsubscribe):
        settings = {"base_url": BASE_URL, "topics": TOPICS}
        settings.update(unsubscribe)
        return Relay(extra={"unsubscribe": settings})

    def test_the_token_carries_the_topic_and_the_header_is_stripped(self):
        with self.relay() as relay:
            send(relay.port, ["alice@example.org"], campaign("offers"))
            data = delivered(relay, 1)[0]
            self.assertNotIn(b"X-Topic", data)
            msg = email.message_from_bytes(data, policy=email.policy.default)
            url = re.match(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)
            self.assertTrue(url.startswith(BASE_URL + "/u/"))
            self.assertIn(url, msg.get_content())
            verified = relay.cli("token", "verify", url)
            self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
            self.assertIn("topic: offers", verified.stdout)
            self.assertIn("email_id: 222222222", verified.stdout)
            # `token sign --topic` makes the same kind of link; an unknown topic is refused.
            signed = relay.cli("token", "sign", "--recipient", "alice@example.org", "--campaign", "9",
                               "--launch", "8", "--topic", "newsletter")
            self.assertEqual(signed.returncode, 0, signed.stderr)
            self.assertIn("topic: newsletter", relay.cli("token", "verify", signed.stdout.strip()).stdout)
            bad = relay.cli("token", "sign", "--recipient", "a@example.org", "--topic", "gardening")
            self.assertEqual(bad.returncode, 64)
            self.assertIn("'gardening' is not one of unsubscribe.topics", bad.stderr)

    def test_an_unknown_topic_is_an_error_in_the_log_and_the_copy_has_none(self):
        with self.relay() as relay:
            send(relay.port, ["bob@example.org"], campaign("gardening"))
            data = delivered(relay, 1)[0]
            self.assertNotIn(b"X-Topic", data)
            self.assertRegex(relay.read_log(),
                             r" error \S+: X-Topic: 'gardening' is not one of unsubscribe.topics; "
                             r"the message is sent as having no topic")
            url = re.search(rb"List-Unsubscribe: <(https://[^>]+)>", data).group(1).decode()
            self.assertIn("topic: (none)", relay.cli("token", "verify", url).stdout)

    def test_page_url_moves_body_links_and_the_header_keeps_the_relay(self):
        with self.relay(page_url=PAGE_URL) as relay:
            html = ("Content-Type: text/html; charset=utf-8\r\n\r\n"
                    "<p><a href=\"*|UNSUBSCRIBE|*\">Unsubscribe</a></p>")
            send(relay.port, ["carol@example.org"],
                 campaign("newsletter", body="").replace(b"\r\n\r\n\r\n", b"\r\n" + html.encode() + b"\r\n"))
            data = delivered(relay, 1)[0]
            header = re.search(rb"List-Unsubscribe: <https://unsub.example.com/u/([A-Za-z0-9_-]+)>", data)
            self.assertTrue(header, data)
            token = header.group(1).decode()
            self.assertIn(f'<a href="{PAGE_URL}?e={token}">Unsubscribe</a>'.encode(), data)
            self.assertIn("topic: newsletter", relay.cli("token", "verify", token).stdout)

    def test_tokens_signed_before_topics_existed_keep_working(self):
        # tests/data/tokens-v1: a keys file and a link that main's relay printed
        # with `unsubrelay token sign` before tokens had a topic.
        keys = os.path.join(DATA, "tokens-v1", "keys.yaml")
        old = ("AQdsZWdhY3kxw5RR9c5OOhtLSNuu4-qBegkyMjIyMjIyMjIJMTExMTExMTExawxC5QAAAABmqEYvJ05CPnli6R-lG84i")
        with self.relay(keys_file=keys) as relay:
            verified = relay.cli("token", "verify", f"{BASE_URL}/u/{old}")
            self.assertEqual(verified.returncode, 0, verified.stdout)
            self.assertIn("uid: w5RR9c5OOhtLSNuu4-qBeg\nemail_id: 222222222\nlaunch_list_id: 111111111\n"
                          "topic: (none)", verified.stdout)
            code, _, body = relay.http("GET", "/api/v1/tokens/" + old)
            self.assertEqual(code, 200, body)
            code, _, body = relay.http("POST", "/u/" + old, "List-Unsubscribe=One-Click",
                                       {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual((code, body), (200, b"unsubscribed\n"))
            # A copy without a topic still gets a version 1 token, as before.
            send(relay.port, ["dave@example.org"], campaign())
            url = re.search(rb"List-Unsubscribe: <(https://[^>]+)>", delivered(relay, 1)[0]).group(1)
            raw = url.rsplit(b"/", 1)[1]
            self.assertEqual(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))[0], 1)


class FeedbackIdTest(unittest.TestCase):
    def test_feedback_id_is_added_before_dkim_and_signed(self):
        keys = tempfile.mkdtemp(prefix="unsubrelay-fbid-")
        key = os.path.join(keys, "rsa.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                       check=True, capture_output=True)
        public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True,
                                capture_output=True).stdout
        record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

        def dns(name, timeout=5):
            return record if name.rstrip(b".") == b"s1._domainkey.example.com" else None

        extra = {"unsubscribe": {"base_url": BASE_URL, "topics": TOPICS,
                                 "feedback_id": "{email_id}:{launch_list_id}:{topic}:acme"},
                 "dkim": [{"domain": "example.com", "selector": "s1", "key_file": key}]}
        with Relay(extra=extra) as relay:
            data = campaign("offers", launch="L:7").replace(b"\r\n\r\n", b"\r\nFeedback-ID: forged:1\r\n\r\n", 1)
            send(relay.port, ["erin@example.org"], data)
            copy = delivered(relay, 1)[0]
            message = copy.split(b"\r\n", 2)[2]  # without the directory upstream's delivery headers
            self.assertEqual(re.findall(rb"^Feedback-ID: (.*)\r\n", message, re.M), [b"222222222:L-7:offers:acme"])
            signature = re.search(rb"^DKIM-Signature: (.*?)\r\n(?! )", message, re.M | re.S).group(1)
            h = re.search(rb"h=([^;]+);", signature.replace(b"\r\n", b"")).group(1)
            self.assertIn(b"feedback-id", h.split(b":"))
            # The signature is before the Feedback-ID in the header: it was signed after the field was added.
            self.assertLess(message.index(b"DKIM-Signature:"), message.index(b"Feedback-ID:"))
            self.assertTrue(dkim.DKIM(message).verify(dnsfunc=dns))
            # Changing the Feedback-ID breaks the signature: it is covered by h=.
            tampered = message.replace(b"Feedback-ID: 222222222:L-7:offers:acme", b"Feedback-ID: 1:2:3:evil")
            self.assertFalse(dkim.DKIM(tampered).verify(dnsfunc=dns))
            # A copy without a topic leaves that field empty.
            send(relay.port, ["frank@example.org"], campaign(None, email_id="5", launch="6"))
            wait_until(lambda: len(relay.outbox_files()) == 2, what="the second copy")
            second = []
            for path in relay.outbox_files():
                with open(path, "rb") as f:
                    second.append(f.read())
            self.assertTrue(any(b"Feedback-ID: 5:6::acme\r\n" in c for c in second))


if __name__ == "__main__":
    unittest.main()
