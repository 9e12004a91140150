"""Every fixture of a corpus nobody here wrote, sent as campaign mail through the
real relay: each copy must carry a visible unsubscribe link.

The corpus is the Ruby mail gem's 104 test messages (shared/corpus/README.md),
read from $UNSUBRELAY_CORPUS or <repo>/../shared/corpus/mail-gem-fixtures; it
is never copied into this repository. "Visible" is judged by Python's email
package, not by our scanner: the URL of the copy's List-Unsubscribe must appear,
after transfer decoding and charset decoding, in a text/* part that is not an
attachment and not inside an attachment or a message/* part. Preambles and
epilogues are not parts, so a footer there does not count.

Under ctest (`python3 test_corpus.py`) a missing corpus exits 77, which ctest
reports as skipped (SKIP_RETURN_CODE); run through `-m unittest` it fails.
"""

import email
import email.policy
import os
import re
import smtplib
import sys
import unittest

from relay import REPO, Relay, wait_until

CORPUS = os.environ.get("UNSUBRELAY_CORPUS") or os.path.join(REPO, "..", "shared", "corpus", "mail-gem-fixtures")
SKIP = 77


def fixtures():
    found = []
    for root, _, files in os.walk(CORPUS):
        found += [os.path.join(root, f) for f in files if not f.startswith(".")]  # 103 .eml and one without
    return sorted(found)


def as_campaign(raw, campaign_id):
    """The fixture as a sender would submit it: CRLF line ends, a campaign header on top."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return b"X-Campaign-Id: " + campaign_id.encode() + b"\r\n" + text


def visible_texts(part, hidden=False):
    """Decoded text of every text/* leaf a mail reader shows as the message body."""
    hidden = hidden or part.get_content_disposition() == "attachment"
    if part.get_content_maintype() == "message":
        return  # an attached or forwarded message: not this message's body
    if part.is_multipart():
        for child in part.get_payload():
            yield from visible_texts(child, hidden)
        return
    if hidden or part.get_content_maintype() != "text":
        return
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        yield payload.decode(charset, "replace")
    except LookupError:
        yield payload.decode("latin-1")


def link_of(message):
    header = str(message.get("List-Unsubscribe", ""))
    m = re.search(r"<(https?://[^>]+)>", header)
    return m.group(1) if m else None


class CorpusTest(unittest.TestCase):
    maxDiff = None

    def test_every_copy_of_every_fixture_has_a_visible_link(self):
        paths = fixtures()
        if not paths:
            self.fail(f"corpus directory {CORPUS} not found or empty (set UNSUBRELAY_CORPUS)")
        relay = Relay(extra={"unsubscribe": {"base_url": "https://unsub.example.com"}}, log={"level": "info"})
        relay.start()
        try:
            queued = {}  # queue id -> fixture path
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as s:
                s.ehlo("corpus.test")
                for i, path in enumerate(paths):
                    with open(path, "rb") as f:
                        data = as_campaign(f.read(), f"corpus-{i}")
                    s.mail("news@example.com")
                    for rcpt in ("a@example.org", "b@example.org"):
                        self.assertEqual(s.rcpt(rcpt)[0], 250)
                    code, text = s.data(data)
                    self.assertEqual(code, 250, f"{path}: {text!r}")
                    queued[re.search(rb"queued as (\S+)", text).group(1).decode()] = path
            files = wait_until(lambda: len(relay.outbox_files()) >= 2 * len(paths) and relay.outbox_files(),
                               timeout=120, what=f"{2 * len(paths)} copies in the outbox")
            failures = []
            for copy in files:
                queue_id = os.path.basename(copy).split(".")[0]
                fixture = os.path.relpath(queued[queue_id], CORPUS)
                with open(copy, "rb") as f:
                    message = email.message_from_bytes(f.read(), policy=email.policy.compat32)
                url = link_of(message)
                if not url or not url.startswith("https://unsub.example.com/u/"):
                    failures.append(f"{fixture}: no List-Unsubscribe URL")
                elif not any(url in text for text in visible_texts(message)):
                    failures.append(f"{fixture}: {url} is in no visible text part")
            self.assertEqual(len(files), 2 * len(paths))
            self.assertEqual(failures, [], f"{len(failures)} of {len(files)} copies without a visible link")
        finally:
            self.assertEqual(relay.stop(), 0)


if __name__ == "__main__":
    if not fixtures():
        print(f"SKIPPED: corpus directory {os.path.abspath(CORPUS)} not found or empty; "
              "set UNSUBRELAY_CORPUS to the mail-gem-fixtures directory (shared/corpus/README.md)")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
