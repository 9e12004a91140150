"""The preference page (issue 13, point 3) with the real binary: GET /u/TOKEN
lists every topic with its state, posting the form records each change as an
event and moves the suppression list, one-click leaves the copy's topic only,
GET changes nothing and never shows the address. Driven over plain HTTP (the
page works without JavaScript) and in headless Chromium at mobile and desktop
widths (screenshots in build/screenshots/). A posted form's changes are saved in
one store transaction, on SQLite and on PostgreSQL (scripts/test-postgres.sh):
all of them, or none when one fails."""

import json
import os
import re
import smtplib
import sqlite3
import subprocess
import unittest
import uuid

from relay import Relay, wait_until
from test_page_script import Browser

TOPICS = [{"id": "newsletter", "name": "Weekly newsletter"}, {"id": "offers", "name": "Offers and promotions"}]
BASE = "https://u.example"


def campaign(topic, launch):
    return ("From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: 700\r\n"
            f"X-Launch-List-Id: {launch}\r\nX-Topic: {topic}\r\n\r\nLeave: *|UNSUBSCRIBE|*\r\n").encode()


class PreferencePageTest(unittest.TestCase):
    def setUp(self):
        self.browser = None
        self.relay = Relay(extra={"unsubscribe": {"base_url": BASE, "topics": TOPICS, "suppression": "topic"},
                                  "http": {"requests_per_minute": 100000}}).start()

    def tearDown(self):
        if self.browser:
            self.browser.close()
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def send(self, topic, to="alice@example.org"):
        """One copy of a campaign with this topic; its token, or None when it was suppressed."""
        before = set(self.relay.outbox_files())
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.sendmail("news@example.com", [to], campaign(topic, "L-" + uuid.uuid4().hex[:8]))
        wait_until(lambda: self.relay.spool_ids() == [], what="the spool to empty")
        new = sorted(set(self.relay.outbox_files()) - before)
        if not new:
            return None
        with open(new[0], "rb") as f:
            return re.search(rb"List-Unsubscribe: <https://u.example/u/([A-Za-z0-9_-]+)>", f.read()).group(1).decode()

    def events(self):
        out = self.relay.cli("export", "--since", "0")
        return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]

    def page(self, token):
        code, headers, body = self.relay.http("GET", "/u/" + token)
        self.assertEqual(code, 200, body)
        self.assertNotIn(b"alice@example.org", body)
        return body.decode()

    def switch_on(self, html, topic):
        tag = re.search(rf'<input [^>]*id="topic-{topic}"[^>]*>', html).group(0)
        return " checked" in tag

    def post(self, token, form):
        return self.relay.http("POST", "/u/" + token, form, {"Content-Type": "application/x-www-form-urlencoded"})

    def test_the_page_shows_and_changes_each_topic_without_javascript(self):
        token = self.send("offers")
        html = self.page(token)
        self.assertIn("a***@example.org", html)
        self.assertIn('<label class="topic" for="topic-newsletter"><span>Weekly newsletter</span>', html)
        self.assertTrue(self.switch_on(html, "newsletter") and self.switch_on(html, "offers"))
        self.page(token)
        self.relay.http("HEAD", "/u/" + token)
        self.assertEqual(self.events(), [])  # GET and HEAD record nothing

        code, _, body = self.post(token, "form=preferences&topic=newsletter&action=save")
        self.assertEqual(code, 200, body)
        self.assertIn(b"Your preferences are saved.", body)
        html = self.page(token)
        self.assertTrue(self.switch_on(html, "newsletter"))
        self.assertFalse(self.switch_on(html, "offers"))
        self.assertEqual([(e["action"], e["source"], e["topic"]) for e in self.events()],
                         [("unsubscribe", "page", "offers")])
        self.assertIsNone(self.send("offers"))          # left
        self.assertIsNotNone(self.send("newsletter"))   # still wanted

        self.post(token, "form=preferences&action=unsubscribe-all")
        html = self.page(token)
        self.assertNotIn(" checked", html)
        self.assertIn('value="resubscribe-all"', html)
        self.assertIsNone(self.send("newsletter"))
        self.post(token, "form=preferences&topic=newsletter&topic=offers&action=save")
        html = self.page(token)
        self.assertTrue(self.switch_on(html, "newsletter") and self.switch_on(html, "offers"))
        self.assertIsNotNone(self.send("offers"))
        self.assertEqual([(e["action"], e["topic"]) for e in self.events()],
                         [("unsubscribe", "offers"), ("unsubscribe", ""), ("resubscribe", ""),
                          ("resubscribe", "offers")])

    def test_one_click_leaves_the_copys_topic_only(self):
        token = self.send("newsletter")
        code, _, body = self.post(token, "List-Unsubscribe=One-Click")
        self.assertEqual((code, body), (200, b"unsubscribed\n"))
        self.assertEqual([(e["source"], e["topic"]) for e in self.events()], [("one-click", "newsletter")])
        self.assertIsNone(self.send("newsletter"))
        self.assertIsNotNone(self.send("offers"))
        html = self.page(token)
        self.assertFalse(self.switch_on(html, "newsletter"))
        self.assertTrue(self.switch_on(html, "offers"))

    def test_in_chromium_at_mobile_and_desktop_widths(self):
        token = self.send("offers")
        self.browser = Browser()
        url = f"http://127.0.0.1:{self.relay.http_port}/u/{token}"
        self.browser.go(url)
        for name, width, height in (("preferences-mobile.png", 375, 740), ("preferences-desktop.png", 1280, 800)):
            self.browser.screenshot(name, width, height)
            # Every control is at least 44 px tall and has a label a screen reader reads.
            sizes = self.browser.script(
                "return [...document.querySelectorAll('.prefs label.topic, .prefs button')]"
                ".map(e => [e.textContent.trim(), e.getBoundingClientRect().height])")
            self.assertEqual(len(sizes), 4, sizes)
            for text, h in sizes:
                self.assertTrue(text, sizes)
                self.assertGreaterEqual(h, 44, sizes)
            labelled = self.browser.script(
                "return [...document.querySelectorAll('input[role=switch]')].map(i => i.labels.length)")
            self.assertEqual(labelled, [1, 1])
        self.assertEqual(self.events(), [])
        # A tap on the row flips the switch; saving records it.
        self.browser.click('label[for="topic-offers"]')
        self.assertFalse(self.browser.script("return document.getElementById('topic-offers').checked"))
        self.browser.click('button[value="save"]')
        wait_until(lambda: "Your preferences are saved." in self.browser.source(), what="the saved notice")
        self.browser.screenshot("preferences-saved-mobile.png", 375, 740)
        self.assertEqual([(e["topic"], e["action"]) for e in self.events()], [("offers", "unsubscribe")])
        self.assertIn("Chrome", self.events()[0]["user_agent"])
        self.assertNotIn("alice@example.org", self.browser.source())


class PreferenceTransactionBase:
    """A posted form's changes (each topic switch, unsubscribe from all or its
    undoing, and the events that record them) are one store transaction."""

    def store_settings(self):
        raise NotImplementedError

    def break_store(self, broken):
        """While broken, the database itself refuses to record a change of the
        topic 'offers' (a trigger): a failure in the middle of a form's changes."""
        raise NotImplementedError

    def setUp(self):
        self.relay = Relay(extra={"unsubscribe": {"base_url": BASE, "topics": TOPICS, "suppression": "topic"},
                                  "http": {"requests_per_minute": 100000},
                                  "store": self.store_settings()}).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def link(self):
        signed = self.relay.cli("token", "sign", "--recipient", "alice@example.org", "--campaign", "700",
                                "--launch", "L1", "--topic", "offers")
        self.assertEqual(signed.returncode, 0, signed.stderr)
        return signed.stdout.strip()[len(BASE):]

    def post(self, path, form):
        return self.relay.http("POST", path, form, {"Content-Type": "application/x-www-form-urlencoded"})

    def events(self):
        out = self.relay.cli("export", "--since", "0")
        self.assertEqual(out.returncode, 0, out.stderr)
        return [(e["action"], e["topic"], e["source"]) for e in map(json.loads, out.stdout.splitlines())]

    def switches(self, path):
        code, _, body = self.relay.http("GET", path)
        self.assertEqual(code, 200, body)
        html = body.decode()
        on = [t["id"] for t in TOPICS if " checked" in re.search(rf'<input [^>]*id="topic-{t["id"]}"[^>]*>',
                                                                     html).group(0)]
        return on, 'value="resubscribe-all"' in html

    def test_every_change_of_a_form_is_recorded(self):
        path = self.link()
        code, _, body = self.post(path, "form=preferences&action=save")  # both switches off
        self.assertEqual(code, 200, body)
        self.assertEqual(self.events(), [("unsubscribe", "newsletter", "page"), ("unsubscribe", "offers", "page")])
        self.assertEqual(self.switches(path), ([], False))
        self.post(path, "form=preferences&action=unsubscribe-all")
        self.assertEqual(self.switches(path), ([], True))
        code, _, body = self.post(path, "form=preferences&topic=newsletter&topic=offers&action=save")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.events()[2:], [("unsubscribe", "", "page"), ("resubscribe", "", "page"),
                                             ("resubscribe", "newsletter", "page"),
                                             ("resubscribe", "offers", "page")])
        self.assertEqual(self.switches(path), (["newsletter", "offers"], False))

    def test_a_failed_change_saves_none_of_the_form(self):
        path = self.link()
        self.break_store(True)
        # Leaving both topics: the newsletter's change is recorded, then the offers' fails.
        code, _, body = self.post(path, "form=preferences&action=save")
        self.assertEqual(code, 503, body)
        self.assertIn(b"Nothing was saved.", body)
        self.assertEqual(self.events(), [])
        self.assertEqual(self.switches(path), (["newsletter", "offers"], False))
        # Back from "unsubscribe from all" with offers switched on: lifting the
        # all-campaigns entry is undone with the failed topic change.
        self.break_store(False)
        self.post(path, "form=preferences&topic=newsletter&action=save")
        self.post(path, "form=preferences&action=unsubscribe-all")
        self.assertEqual(self.switches(path), ([], True))
        before = self.events()
        self.break_store(True)
        code, _, body = self.post(path, "form=preferences&topic=newsletter&topic=offers&action=save")
        self.assertEqual(code, 503, body)
        self.assertEqual(self.events(), before)
        self.assertEqual(self.switches(path), ([], True))


class SqlitePreferenceTransactionTest(PreferenceTransactionBase, unittest.TestCase):
    def store_settings(self):
        return {"kind": "sqlite", "path": "var/unsubrelay.db"}

    def break_store(self, broken):
        db = sqlite3.connect(os.path.join(self.relay.dir, "var", "unsubrelay.db"), isolation_level=None)
        try:
            db.execute("CREATE TRIGGER inject_failure BEFORE INSERT ON events WHEN NEW.topic = 'offers' "
                       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END" if broken else
                       "DROP TRIGGER inject_failure")
        finally:
            db.close()


class PostgresPreferenceTransactionTest(PreferenceTransactionBase, unittest.TestCase):
    def store_settings(self):
        if not hasattr(self, "url"):
            server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
            self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
            database = "prefs_" + uuid.uuid4().hex[:12]
            subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
            self.addCleanup(subprocess.run, ["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {database}"],
                            check=False)
            self.url = server.rsplit("/", 1)[0] + "/" + database
        return {"kind": "postgresql", "url": self.url}

    def break_store(self, broken):
        statement = ("CREATE OR REPLACE FUNCTION inject_failure() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; "
                     "CREATE TRIGGER inject_failure BEFORE INSERT ON events FOR EACH ROW "
                     "WHEN (NEW.topic = 'offers') EXECUTE FUNCTION inject_failure()"
                     if broken else "DROP TRIGGER inject_failure ON events")
        subprocess.run(["psql", self.url, "-q", "-v", "ON_ERROR_STOP=1", "-c", statement], check=True)


if __name__ == "__main__":
    unittest.main()
