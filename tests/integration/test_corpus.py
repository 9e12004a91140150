"""Every fixture of a corpus nobody here wrote, sent as campaign mail through the
real relay: each copy must carry a visible unsubscribe link and keep every part.

The corpus is the Ruby mail gem's 104 test messages (shared/corpus/README.md),
read from $UNSUBRELAY_CORPUS or <repo>/../shared/corpus/mail-gem-fixtures; it
is never copied into this repository. "Visible" is judged by Python's email
package, not by our scanner: the URL of the copy's List-Unsubscribe must appear,
after transfer decoding and charset decoding, in a text/* part that is not an
attachment and not inside an attachment or a message/* part. Preambles and
epilogues are not parts, so a footer there does not count. A mail reader shows
one alternative of a multipart/alternative (the last it can: a text-only reader
the last text/plain) and only the root of a multipart/related, so the link must
be in those (issue 22).

Nothing else may change: the copy's leaf parts (attachments, images, texts,
attached messages), read by the same package, must be the original's, in the
same order, with the same type, disposition and file name, and the same decoded
bytes (a text part may only have gained the footer). The relay's own footer
part, when it adds one, must be the last child of a multipart/mixed, after the
body, never an alternative or a part of a multipart/related.

Under ctest (`python3 test_corpus.py`) a missing corpus exits 77, which ctest
reports as skipped (SKIP_RETURN_CODE), except under CI=true, where it fails;
run through `-m unittest` it fails.
"""

import email
import hashlib
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


FOOTER_TEXT = b"To stop receiving these emails, unsubscribe: "


def reader_shows(part, url):
    """Whether a mail reader showing part as the message body shows url."""
    if part.get_content_disposition() == "attachment" or part.get_content_maintype() == "message":
        return False
    if part.is_multipart():
        children = part.get_payload()
        if part.get_content_subtype() == "alternative":
            # A reader shows the last alternative it can; a text-only reader the last text/plain.
            shown = [c for c in children if c.get_content_disposition() != "attachment"
                     and (c.is_multipart() or c.get_content_type() in ("text/plain", "text/html"))]
            picks = shown[-1:] + [c for c in shown if c.get_content_type() == "text/plain"][-1:]
            return bool(picks) and all(reader_shows(c, url) for c in picks)
        if part.get_content_subtype() == "related":
            return bool(children) and reader_shows(children[0], url)
        return any(reader_shows(c, url) for c in children)
    return part.get_content_maintype() == "text" and any(url in t for t in visible_texts(part))


def is_footer_part(part):
    return (not part.is_multipart() and part.get_content_type() == "text/plain"
            and (part.get_payload(decode=True) or b"").startswith(FOOTER_TEXT))


def text_lines(payload):
    """Text compared line by line, without trailing white space: quoted-printable
    decoders must drop it (RFC 2045 6.7), Python's does not."""
    return b"\n".join(line.rstrip() for line in payload.replace(b"\r\n", b"\n").split(b"\n")).rstrip()


def without_footer(payload, url):
    """A text part's decoded bytes without the footer the relay may have added."""
    link = re.escape(url.encode())
    payload = re.sub(rb"(\r?\n){1,2}" + re.escape(FOOTER_TEXT) + link + rb"\r?\n", b"\n", payload, count=1)
    payload = re.sub(rb'<p style="font-size:12px;color:#666666;text-align:center">To stop receiving these emails, '
                     rb'<a href="' + link + rb'">unsubscribe</a>.</p>\r?\n', b"", payload, count=1)
    return text_lines(payload)


def leaves(part, url=None, parent=None, index=0, footers=None):
    """(type, disposition, file name, digest of the decoded bytes) of every leaf, in order.
    With url, footer parts the relay added are left out and collected in footers."""
    if part.is_multipart():
        for i, child in enumerate(part.get_payload()):
            yield from leaves(child, url, part, i, footers)
        return
    if url and is_footer_part(part):
        footers.append((parent, index))
        return
    if part.get_content_maintype() == "message" and isinstance(part.get_payload(), list):
        payload = b"".join(m.as_bytes() for m in part.get_payload())
    else:
        payload = part.get_payload(decode=True) or b""
    if part.get_content_maintype() == "text":
        payload = without_footer(payload, url) if url else text_lines(payload)
    elif part.get_content_maintype() == "multipart":  # no delimiter found: its body is text to Python
        payload = text_lines(payload)
    yield (part.get_content_type(), part.get_content_disposition(), part.get_filename(),
           hashlib.sha256(payload).hexdigest()[:16])


def structure_failures(original, copy, url):
    """What changed in copy's parts besides the link, as failure messages."""
    failures = []
    footers = []
    before, after = list(leaves(original)), list(leaves(copy, url, footers=footers))
    if before != after:
        failures.append(f"leaf parts changed: {before} -> {after}")
    if len(footers) > 1:
        failures.append(f"{len(footers)} footer parts")
    for parent, index in footers:
        last = parent is not None and index == len(parent.get_payload()) - 1
        if parent is None or parent.get_content_type() != "multipart/mixed" or index == 0 or not last:
            kind = parent.get_content_type() if parent is not None else "the top level"
            failures.append(f"footer part is child {index} of {kind}, not the last part of a multipart/mixed "
                            "after the body")
    return failures


def link_of(message):
    header = str(message.get("List-Unsubscribe", ""))
    m = re.search(r"<(https?://[^>]+)>", header)
    return m.group(1) if m else None


class CorpusTest(unittest.TestCase):
    maxDiff = None

    def test_every_copy_of_every_fixture_has_a_visible_link_and_all_its_parts(self):
        paths = fixtures()
        if not paths:
            self.fail(f"corpus directory {CORPUS} not found or empty (set UNSUBRELAY_CORPUS)")
        relay = Relay(extra={"unsubscribe": {"base_url": "https://unsub.example.com"}}, log={"level": "info"})
        relay.start()
        try:
            queued = {}  # queue id -> fixture path
            sent = {}  # fixture path -> the bytes sent
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as s:
                s.ehlo("corpus.test")
                for i, path in enumerate(paths):
                    with open(path, "rb") as f:
                        data = sent[path] = as_campaign(f.read(), f"corpus-{i}")
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
                    continue
                if not any(url in text for text in visible_texts(message)):
                    failures.append(f"{fixture}: {url} is in no visible text part")
                elif not reader_shows(message, url):
                    failures.append(f"{fixture}: {url} is not in the parts a reader shows (an unshown alternative?)")
                original = email.message_from_bytes(sent[queued[queue_id]], policy=email.policy.compat32)
                failures += [f"{fixture}: {f}" for f in structure_failures(original, message, url)]
            self.assertEqual(len(files), 2 * len(paths))
            self.assertEqual(failures, [], f"{len(failures)} failures in {len(files)} copies")
        finally:
            self.assertEqual(relay.stop(), 0)


if __name__ == "__main__":
    if not fixtures():
        why = (f"corpus directory {os.path.abspath(CORPUS)} not found or empty; "
               "set UNSUBRELAY_CORPUS to the mail-gem-fixtures directory (shared/corpus/README.md)")
        if os.environ.get("CI") == "true":
            print(f"FAILED: {why} (CI=true: the corpus is required)")
            sys.exit(1)
        print(f"SKIPPED: {why}")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
