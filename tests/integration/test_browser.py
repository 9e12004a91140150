"""The landing page in a real browser: headless Chromium (Debian's chromium package).

Screenshots are kept in tests/artifacts/ (mobile and desktop widths, before
and after confirming) for a person to look at.
"""

import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import unittest
import urllib.request

from relay import REPO, Relay, free_port, wait_until

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


class WebDriver:
    """Chromium driven through chromedriver's W3C WebDriver protocol (plain HTTP and JSON)."""

    def __init__(self):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="unsubrelay-chromedriver-")
        self.proc = subprocess.Popen(["chromedriver", f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(self._ready, timeout=30, what="chromedriver")
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=390,844",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={self.profile}"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return self.call("GET", "/status")["ready"]
        except OSError:
            return False

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def go(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def click(self, css):
        element = self.call("POST", f"/session/{self.session}/element", {"using": "css selector", "value": css})
        self.call("POST", f"/session/{self.session}/element/{next(iter(element.values()))}/click", {})

    def source(self):
        return self.call("GET", f"/session/{self.session}/source")

    def url(self):
        return self.call("GET", f"/session/{self.session}/url")

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            shutil.rmtree(self.profile, ignore_errors=True)


class BrowserTest(unittest.TestCase):
    def test_a_person_clicks_unsubscribe_then_resubscribe(self):
        """A real click on the page's buttons, as a recipient would do it."""
        with Relay(extra={"unsubscribe": {"base_url": "http://127.0.0.1:0"}}) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["bob@example.org"],
                           b"Subject: c\r\nX-Campaign-Id: 222222222\r\n\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n")
            with open(relay.wait_for_outbox(1)[0], "rb") as f:
                token_path = re.search(rb"List-Unsubscribe: <http://127.0.0.1:0(/u/[A-Za-z0-9_-]+)>",
                                       f.read()).group(1).decode()
            api = "/api/v1/tokens/" + token_path[3:]
            browser = WebDriver()
            try:
                browser.go(f"http://127.0.0.1:{relay.http_port}{token_path}")
                self.assertIn("b***@example.org", browser.source())
                self.assertIn(b'"status":"subscribed"', relay.http("GET", api)[2])
                browser.click("button[type=submit]")
                wait_until(lambda: "You are unsubscribed" in browser.source(), timeout=30,
                           what="the confirmation page after the click")
                self.assertIn(b'"status":"unsubscribed"', relay.http("GET", api)[2])
                # The event came from the page, with the browser's own User-Agent.
                exported = relay.cli("export", "--since", "0", "--format", "jsonl")
                self.assertEqual(exported.returncode, 0, exported.stderr)
                events = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
                self.assertEqual([e["source"] for e in events], ["page"])
                self.assertIn("Chrome", events[0]["user_agent"])
                # And back: the resubscribe button.
                browser.click("button[type=submit]")
                wait_until(lambda: b'"status":"subscribed"' in relay.http("GET", api)[2], timeout=30,
                           what="resubscribed after the second click")
            finally:
                browser.close()

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
