"""A CleverTap page works with only its script tag changed (issue 13, point 4).

The page (tests/data/pages/clevertap-page.html) is written against CleverTap's
contract: $WZRK_WR.getEmail() on load, wzrk_email_fetched(emailStr), and its own
unsubscribe() / resubscribe() calling $WZRK_WR.unSubEmail() / subEmail(). Headless
Chromium drives it through chromedriver, served by the relay as page_template and
hosted on "the operator's site" (another origin) with page_url and page_origins.
"""

import base64
import json
import os
import re
import smtplib
import tempfile
import threading
import unittest
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import test_browser
from relay import REPO, Relay, wait_until

PAGE = os.path.join(REPO, "tests", "data", "pages", "clevertap-page.html")
SHOTS = os.path.join(REPO, "build", "screenshots")


def campaign(body="Leave: *|UNSUBSCRIBE|*"):
    return ("From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: 222222222\r\nX-Launch-List-Id: 111111111\r\n"
            f"\r\n{body}\r\n").encode()


def page_with_script(src):
    with open(PAGE) as f:
        return f.read().replace("RELAY_SCRIPT", src)


class Site:
    """The operator's web site: serves the page at /unsubscribe.html on its own origin."""

    def __init__(self, html):
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path.startswith("/unsubscribe.html") else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Browser(test_browser.WebDriver):
    def script(self, js):
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": js, "args": []})

    def value(self, css):
        return self.script(f"var e = document.querySelector({json.dumps(css)}); return e ? e.value : null;")

    def alert_text(self, timeout=20):
        def text():
            try:
                return self.call("GET", f"/session/{self.session}/alert/text")
            except urllib.error.HTTPError:
                return None
        found = wait_until(text, timeout=timeout, what="the page's alert")
        self.call("POST", f"/session/{self.session}/alert/accept", {})
        return found

    def screenshot(self, name, width, height):
        self.call("POST", f"/session/{self.session}/window/rect", {"width": width, "height": height})
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", f"/session/{self.session}/screenshot")))
        return path


class CleverTapPageTest(unittest.TestCase):
    def setUp(self):
        self.browser = None

    def tearDown(self):
        if self.browser:
            self.browser.close()

    def token_of(self, relay, pattern):
        with open(relay.wait_for_outbox(1)[0], "rb") as f:
            return re.search(pattern, f.read()).group(1).decode()

    def status(self, relay, token):
        code, _, body = relay.http("GET", "/api/v1/tokens/" + token)
        self.assertEqual(code, 200, body)
        return json.loads(body)["status"]

    def events(self, relay):
        out = relay.cli("export", "--since", "0", "--format", "jsonl")
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def click_and_confirm(self, css, label):
        self.browser.click(css)
        self.assertEqual(self.browser.alert_text(), f"You've been {label}")

    def test_the_page_served_by_the_relay_as_page_template(self):
        template = os.path.join(tempfile.mkdtemp(prefix="unsubrelay-page-"), "clevertap.html")
        with open(template, "w") as f:
            f.write(page_with_script("/js/unsubscribe.js"))
        extra = {"unsubscribe": {"base_url": "http://127.0.0.1:0"}, "http": {"page_template": template}}
        with Relay(extra=extra) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["alice@example.org"], campaign())
            token = self.token_of(relay, rb"List-Unsubscribe: <http://127.0.0.1:0/u/([A-Za-z0-9_-]+)>")
            code, headers, body = relay.http("GET", "/u/" + token)
            self.assertEqual(code, 200)
            self.assertIn("script-src 'self' 'unsafe-inline'", headers["Content-Security-Policy"])
            self.assertNotIn(b"alice@example.org", body)

            self.browser = Browser()
            self.browser.go(f"http://127.0.0.1:{relay.http_port}/u/{token}")
            wait_until(lambda: self.browser.value("#email") == "a***@example.org", timeout=30,
                       what="the masked address in the page")
            self.assertEqual(self.status(relay, token), "subscribed")  # loading the page changed nothing
            self.browser.screenshot("clevertap-relay-mobile.png", 390, 844)
            self.click_and_confirm("#unsub", "unsubscribed")
            self.assertEqual(self.status(relay, token), "unsubscribed")
            self.click_and_confirm("#resub", "subscribed")
            self.assertEqual(self.status(relay, token), "subscribed")
            events = self.events(relay)
            self.assertEqual([(e["action"], e["source"]) for e in events],
                             [("unsubscribe", "page"), ("resubscribe", "page")])
            self.assertIn("Chrome", events[0]["user_agent"])
            self.assertNotIn("alice@example.org", self.browser.source())

    def test_the_page_on_the_operators_own_site(self):
        relay = Relay()
        site = Site(page_with_script(f"http://127.0.0.1:{relay.http_port}/js/unsubscribe.js"))
        stranger = Site(page_with_script(f"http://127.0.0.1:{relay.http_port}/js/unsubscribe.js"))
        self.addCleanup(site.close)
        self.addCleanup(stranger.close)
        page_url = site.origin + "/unsubscribe.html"
        relay.extra["unsubscribe"] = {"base_url": "https://unsub.example.com", "page_url": page_url,
                                      "page_origins": [site.origin]}
        relay.write_config()
        with relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("news@example.com", ["bob@example.org"], campaign())
            with open(relay.wait_for_outbox(1)[0], "rb") as f:
                copy = f.read()
            link = re.search(rb"Leave: (\S+)", copy).group(1).decode()
            token = re.search(rb"List-Unsubscribe: <https://unsub.example.com/u/([A-Za-z0-9_-]+)>", copy).group(1)
            self.assertEqual(link, f"{page_url}?e={token.decode()}")
            token = token.decode()

            # A stranger's page with the same link gets nothing: no CORS answer, and its POST is refused.
            self.browser = Browser()
            self.browser.go(f"{stranger.origin}/unsubscribe.html?e={token}")
            # The script's request is over when it has failed (xhr.onerror: the CORS refusal) or filled the field.
            wait_until(lambda: self.browser.script("return $WZRK_WR.status.error || null;")
                       or self.browser.value("#email"), timeout=30, what="the stranger page's request to end")
            self.assertEqual(self.browser.value("#email"), "")
            self.assertEqual(self.browser.script("return $WZRK_WR.status.error;"), "the relay could not be reached")
            code, headers, _ = relay.http("GET", "/api/v1/tokens/" + token, headers={"Origin": stranger.origin})
            self.assertEqual(code, 200)
            self.assertNotIn("Access-Control-Allow-Origin", headers)
            code, _, body = relay.http("POST", f"/api/v1/tokens/{token}/unsubscribe", "",
                                       {"Origin": stranger.origin})
            self.assertEqual(code, 403, body)
            self.assertEqual(self.status(relay, token), "subscribed")

            self.browser.go(link)
            wait_until(lambda: self.browser.value("#email") == "b***@example.org", timeout=30,
                       what="the masked address on the operator's page")
            self.browser.screenshot("clevertap-site-desktop.png", 1280, 800)
            self.click_and_confirm("#unsub", "unsubscribed")
            self.assertEqual(self.status(relay, token), "unsubscribed")
            self.click_and_confirm("#resub", "subscribed")
            self.assertEqual(self.status(relay, token), "subscribed")
            self.assertEqual([e["source"] for e in self.events(relay)], ["page", "page"])

            # CORS names the listed origin, never "*"; the preflight is for listed origins only.
            code, headers, _ = relay.http("GET", "/api/v1/tokens/" + token, headers={"Origin": site.origin})
            self.assertEqual(headers.get("Access-Control-Allow-Origin"), site.origin)
            self.assertEqual(headers.get("Vary"), "Origin")
            code, headers, _ = relay.http("OPTIONS", f"/api/v1/tokens/{token}/unsubscribe",
                                          headers={"Origin": site.origin, "Access-Control-Request-Method": "POST"})
            self.assertEqual(code, 204)
            self.assertEqual(headers.get("Access-Control-Allow-Methods"), "GET, POST")
            code, headers, _ = relay.http("OPTIONS", f"/api/v1/tokens/{token}/unsubscribe",
                                          headers={"Origin": stranger.origin})
            self.assertNotIn("Access-Control-Allow-Methods", headers)
            code, headers, script = relay.http("GET", "/js/unsubscribe.js")
            self.assertEqual(code, 200)
            self.assertTrue(headers["Content-Type"].startswith("text/javascript"))
            self.assertIn(b"wzrk_email_fetched", script)
            for path in ("/js/unsubscribe.js", "/api/v1/tokens/" + token):
                for origin in (site.origin, stranger.origin, "null"):
                    _, headers, _ = relay.http("GET", path, headers={"Origin": origin})
                    self.assertNotEqual(headers.get("Access-Control-Allow-Origin"), "*")


if __name__ == "__main__":
    unittest.main()
