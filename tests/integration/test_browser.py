"""The landing page in a real browser: headless Chromium (Debian's chromium package).

Screenshots are kept in tests/artifacts/ (mobile and desktop widths, before
and after confirming) for a person to look at.
"""

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import unittest

from relay import REPO, Relay, wait_until

ARTIFACTS = os.path.join(REPO, "tests", "artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium(*args):
    profile = tempfile.mkdtemp(prefix="unsubrelay-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class BrowserTest(unittest.TestCase):
    def test_landing_page_renders_in_chromium(self):
        os.makedirs(ARTIFACTS, exist_ok=True)
        with Relay(extra={"unsubscribe": {"base_url": "http://127.0.0.1:0"}}) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["alice@example.org"],
                           b"Subject: c\r\nX-Campaign-Id: 222222222\r\n\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n")
            path = relay.wait_for_outbox(1)[0]
            with open(path, "rb") as f:
                token_path = re.search(rb"List-Unsubscribe: <http://127.0.0.1:0(/u/[A-Za-z0-9_-]+)>", f.read()).group(1)
            url = f"http://127.0.0.1:{relay.http_port}{token_path.decode()}"

            dom = chromium("--dump-dom", url)
            self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
            self.assertIn("a***@example.org", dom.stdout)
            self.assertIn("<button type=\"submit\">Unsubscribe</button>", dom.stdout)
            self.assertIn('name="viewport"', dom.stdout)
            self.assertNotIn("alice@example.org", dom.stdout)

            for name, size in (("landing-mobile.png", "390,844"), ("landing-desktop.png", "1280,800")):
                shot = os.path.join(ARTIFACTS, name)
                if os.path.exists(shot):
                    os.remove(shot)
                result = chromium(f"--screenshot={shot}", f"--window-size={size}", url)
                self.assertEqual(result.returncode, 0, result.stderr[-2000:])
                self.assertGreater(os.path.getsize(shot), 5000, name)  # a rendered page, not a blank image
                with open(shot, "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

            # The browser's GET changed nothing: the contact is still subscribed.
            self.assertIn(b'"status":"subscribed"', relay.http("GET", "/api/v1/tokens/" + token_path.decode()[3:])[2])
            # After confirming (the form's POST), the page offers to resubscribe.
            relay.http("POST", token_path.decode(), "action=unsubscribe",
                       {"Content-Type": "application/x-www-form-urlencoded"})
            done = os.path.join(ARTIFACTS, "unsubscribed-mobile.png")
            result = chromium(f"--screenshot={done}", "--window-size=390,844", url)
            self.assertEqual(result.returncode, 0)
            dom = chromium("--dump-dom", url)
            self.assertIn("You are unsubscribed", dom.stdout)
            self.assertIn("Resubscribe", dom.stdout)


if __name__ == "__main__":
    unittest.main()
