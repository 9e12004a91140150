"""Issue 22 points 4 and 5 against the real binary: API key scopes and /metrics.

A key line in http.api_keys_file may name scopes (read, write, import,
export, erase); a key without them may do everything, as before. A key that
lacks a route's scope gets 403 naming it and changes nothing; no key or an
unknown key gets 401. A bad scope stops check-config and the relay with the
keys file's FILE:LINE. With http.metrics_networks set, /metrics answers 403
to every other client (127.0.0.2 here: the client socket binds that source).
"""

import http.client
import json
import os
import re
import signal
import smtplib
import tempfile
import unittest
import uuid

from relay import Relay, http_request, wait_until

FULL = "full-key-0123456789abcdef0123"
READ = "read-key-0123456789abcdef0123"
EXPORT = "export-key-0123456789abcdef01"


def write_keys(path, text):
    with open(path, "w") as f:
        f.write(text)


class ScopesTest(unittest.TestCase):
    def setUp(self):
        self.keys = os.path.join(tempfile.mkdtemp(prefix="unsubrelay-scopes-"), "api-keys")
        write_keys(self.keys, f"# operators\n{FULL}\n\n  {READ} read   # the dashboard\n{EXPORT} read,export\n")
        self.relay = Relay(extra={
            "http": {"api_keys_file": self.keys, "requests_per_minute": 100000},
            "unsubscribe": {"base_url": "https://u.example"},
        }).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def api(self, key, method, path, body=None):
        headers = {"Authorization": "Bearer " + key} if key else {}
        code, _, data = self.relay.http(method, path, body, headers)
        return code, json.loads(data) if data else None

    def unsubscribe_with_agent(self, address, agent):
        """A campaign copy to address, then its one-click with a User-Agent: an event with IP and agent."""
        before = set(self.relay.outbox_files())
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.sendmail("news@example.com", [address],
                       b"From: news@example.com\r\nSubject: c\r\nX-Campaign-Id: 900\r\nX-Launch-List-Id: L-900\r\n"
                       b"\r\nLeave: *|UNSUBSCRIBE|*\r\n")
        files = wait_until(lambda: set(self.relay.outbox_files()) - before, what="the copy")
        with open(files.pop(), "rb") as f:
            link = re.search(rb"List-Unsubscribe: <https://u.example(/u/[A-Za-z0-9_-]+)>", f.read()).group(1)
        code, _, _ = self.relay.http("POST", link.decode(), "List-Unsubscribe=One-Click",
                                     {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": agent})
        self.assertEqual(code, 200)

    def test_read_key_reads_and_is_refused_every_change(self):
        address = f"scoped-{uuid.uuid4().hex[:8]}@example.org"
        agent = f"ScopeProbe/{uuid.uuid4().hex[:8]}"
        self.unsubscribe_with_agent(address, agent)

        # What read allows: lists, one address, statistics, a contact without its IPs and agents.
        self.assertEqual(self.api(READ, "GET", "/api/v1/suppressions")[0], 200)
        self.assertEqual(self.api(READ, "GET", "/api/v1/suppressions/" + address)[0], 200)
        self.assertEqual(self.api(READ, "GET", "/api/v2/email/900/responses/summary?launch_list_id=L-900")[0], 200)
        code, shown = self.api(READ, "GET", "/api/v1/contacts/" + address)
        self.assertEqual(code, 200, shown)
        self.assertEqual([(e["action"], e["ip"], e["user_agent"]) for e in shown["events"]],
                         [("unsubscribe", "", "")])
        self.assertEqual(shown["redacted"], ["ip", "user_agent"])
        # export adds them.
        code, shown = self.api(EXPORT, "GET", "/api/v1/contacts/" + address)
        self.assertEqual(code, 200, shown)
        self.assertEqual([(e["ip"], e["user_agent"]) for e in shown["events"]], [("127.0.0.1", agent)])
        self.assertNotIn("redacted", shown)

        # Every change is refused with the scope it needs, and nothing changes.
        refused = [
            ("PUT", "/api/v1/suppressions/other@example.org", '{"reason":"manual"}', "write"),
            ("DELETE", "/api/v1/suppressions/" + address, None, "write"),
            ("POST", "/api/v1/suppressions/import", "email\nimported@example.org\n", "import"),
            ("DELETE", "/api/v1/contacts/" + address, None, "erase"),
            ("POST", "/api/v2/email/unsubscribe", '{"launch_list_id":"L-900","email_id":"900","uid":"x"}', "write"),
        ]
        for key in (READ, EXPORT):
            for method, path, body, scope in refused:
                code, answer = self.api(key, method, path, body)
                self.assertEqual((code, answer.get("scope")), (403, scope), (method, path, answer))
                self.assertIn(scope, answer["error"])
        for probe in ("other@example.org", "imported@example.org"):
            self.assertEqual(self.api(FULL, "GET", "/api/v1/suppressions/" + probe)[1]["suppressions"], [])
        self.assertEqual(len(self.api(FULL, "GET", "/api/v1/suppressions/" + address)[1]["suppressions"]), 1)
        self.assertEqual(self.api(FULL, "GET", "/api/v1/contacts/" + address)[0], 200)  # not erased

        # No key or an unknown one (or a known key's prefix) is still 401.
        for key in (None, "wrong", READ[:-1], READ + "x"):
            self.assertEqual(self.api(key, "GET", "/api/v1/suppressions")[0], 401, key)

    def test_unscoped_line_may_do_everything(self):
        address = f"full-{uuid.uuid4().hex[:8]}@example.org"
        agent = f"FullProbe/{uuid.uuid4().hex[:8]}"
        self.unsubscribe_with_agent(address, agent)
        code, shown = self.api(FULL, "GET", "/api/v1/contacts/" + address)
        self.assertEqual([(e["ip"], e["user_agent"]) for e in shown["events"]], [("127.0.0.1", agent)])
        self.assertEqual(self.api(FULL, "PUT", "/api/v1/suppressions/other@example.org", '{"reason":"manual"}')[0], 201)
        self.assertEqual(self.api(FULL, "DELETE", "/api/v1/suppressions/other@example.org")[0], 200)
        self.assertEqual(self.api(FULL, "POST", "/api/v1/suppressions/import", "email\nimp@example.org\n")[0], 200)
        self.assertEqual(self.api(FULL, "DELETE", "/api/v1/contacts/" + address)[0], 200)

    def test_sighup_reloads_the_keys_and_a_bad_file_is_refused(self):
        self.assertEqual(self.api(READ, "PUT", "/api/v1/suppressions/a@example.org")[0], 403)
        write_keys(self.keys, f"{READ} read,write\n")
        self.relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.api(READ, "PUT", "/api/v1/suppressions/a@example.org")[0] == 201,
                   what="the reloaded scopes")
        self.assertEqual(self.api(FULL, "GET", "/api/v1/suppressions")[0], 401)  # no longer listed
        # A bad scope: the reload is refused (FILE:LINE in the log) and the running keys stay.
        write_keys(self.keys, f"{FULL}\n{READ} raed\n")
        self.relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: f"{self.keys}:2:" in self.relay.read_log(), what="the reload error")
        self.assertIn("reload refused", self.relay.read_log())
        self.assertEqual(self.api(READ, "PUT", "/api/v1/suppressions/b@example.org")[0], 201)
        self.assertEqual(self.api(FULL, "GET", "/api/v1/suppressions")[0], 401)


class BadKeysFileTest(unittest.TestCase):
    def test_unknown_scope_is_a_config_error_with_file_and_line(self):
        keys = os.path.join(tempfile.mkdtemp(prefix="unsubrelay-scopes-"), "api-keys")
        write_keys(keys, f"# ok\n{FULL} read\n{READ} read,delete\n")
        relay = Relay(extra={"http": {"api_keys_file": keys}})
        checked = relay.cli("check-config")
        self.assertEqual(checked.returncode, 78, checked.stdout + checked.stderr)
        self.assertIn(f"{keys}:3: unknown scope 'delete'", checked.stderr)
        self.assertNotIn(READ, checked.stderr, "an error never prints a key")
        relay.start(wait=False)
        self.assertEqual(relay.proc.wait(30), 78, relay.read_log()[-2000:])
        self.assertIn(f"{keys}:3:", relay.read_log())
        relay.stop()


class MetricsNetworksTest(unittest.TestCase):
    def get_metrics(self, relay, source):
        connection = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10,
                                                source_address=(source, 0))
        return http_request(connection, "GET", "/metrics")

    def test_metrics_only_for_the_listed_networks(self):
        with Relay(extra={"http": {"metrics_networks": ["127.0.0.1/32"]}}) as relay:
            status, _, body = self.get_metrics(relay, "127.0.0.1")
            self.assertEqual(status, 200, body)
            self.assertIn(b"unsubrelay_connections_total", body)
            status, _, body = self.get_metrics(relay, "127.0.0.2")
            self.assertEqual(status, 403, body)
            self.assertNotIn(b"unsubrelay", body)
            # Other routes still answer 127.0.0.2.
            connection = http.client.HTTPConnection("127.0.0.1", relay.http_port, timeout=10,
                                                    source_address=("127.0.0.2", 0))
            self.assertEqual(http_request(connection, "GET", "/healthz")[0], 200)

    def test_metrics_public_without_metrics_networks(self):
        with Relay() as relay:
            for source in ("127.0.0.1", "127.0.0.2"):
                self.assertEqual(self.get_metrics(relay, source)[0], 200)


if __name__ == "__main__":
    unittest.main()
