"""Issue 11: the unsubscribe service speaks HTTPS itself (http.tls, http.listen_tls).

Gmail wants an https: one-click URL. With http.tls the relay answers TLS on
http.listen_tls with the same TLS profile as SMTP (docs/tls.md), sends HSTS on
TLS answers only, and loads a new certificate on SIGHUP; plain http.listen stays
for loopback behind a proxy.
"""

import http.client
import re
import shutil
import signal
import socket
import ssl
import tempfile
import unittest

from relay import Relay, free_port, http_request, make_certificate, not_after, wait_until
from relay import client_tls_context as client_context


def https(port, method, path, body=None, headers=None, context=None):
    ctx = context or client_context()
    return http_request(http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx),
                        method, path, body, headers)


def peer_certificate(port, context=None):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with (context or client_context()).wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True), s.cipher()


class HttpsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="unsubrelay-https-")
        self.cert, self.key = make_certificate(self.dir, "first.test")
        self.tls_port = free_port()
        self.relay = Relay(extra={
            "http": {"listen_tls": [f"127.0.0.1:{self.tls_port}"], "tls": {"cert": self.cert, "key": self.key}},
            "unsubscribe": {"base_url": f"https://127.0.0.1:{self.tls_port}"}}).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def test_https_answers_with_hsts_and_plain_http_without(self):
        status, headers, body = https(self.tls_port, "GET", "/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Strict-Transport-Security"), "max-age=31536000")
        status, headers, _ = self.relay.http("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertNotIn("Strict-Transport-Security", headers)
        self.assertIn(f"HTTPS listening on 127.0.0.1:{self.tls_port}", self.relay.read_log())

    def test_one_click_over_https(self):
        signed = self.relay.cli("token", "sign", "--recipient", "reader@example.org", "--campaign", "c1",
                                "--launch", "l1")
        self.assertEqual(signed.returncode, 0, signed.stderr)
        url = signed.stdout.strip()
        self.assertTrue(url.startswith(f"https://127.0.0.1:{self.tls_port}/u/"), url)
        path = url[len(f"https://127.0.0.1:{self.tls_port}"):]
        status, headers, body = https(self.tls_port, "POST", path, body="List-Unsubscribe=One-Click",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200, body)
        self.assertIn("Strict-Transport-Security", headers)

    def test_the_tls_profile_holds_on_https(self):
        tls12 = ssl.TLSVersion.TLSv1_2
        for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"):
            with self.subTest(cipher=weak), self.assertRaises(ssl.SSLError):
                peer_certificate(self.tls_port, client_context(tls12, ciphers=weak))
        _, cipher = peer_certificate(self.tls_port, client_context(tls12, ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
        self.assertEqual(cipher[0], "ECDHE-RSA-AES128-GCM-SHA256")
        _, cipher = peer_certificate(self.tls_port)
        self.assertEqual(cipher[1], "TLSv1.3")

    def expiry_metric(self):
        status, _, body = https(self.tls_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        match = re.search(rb'unsubrelay_tls_certificate_expiry_timestamp_seconds\{listener="http",[^}]*\} (\d+)', body)
        self.assertTrue(match, body[-2000:])
        return int(match.group(1))

    def test_sighup_loads_a_new_certificate_and_keeps_the_old_one_on_error(self):
        first, _ = peer_certificate(self.tls_port)
        other = tempfile.mkdtemp(prefix="unsubrelay-https-2-")
        cert2, key2 = make_certificate(other, "second.test", days=30)  # the renewal outlives the first
        shutil.copy(cert2, self.cert)
        shutil.copy(key2, self.key)
        self.relay.proc.send_signal(signal.SIGHUP)
        second = wait_until(lambda: (lambda c: c if c != first else None)(peer_certificate(self.tls_port)[0]),
                            what="the new certificate")
        with open(cert2) as f:
            self.assertEqual(second, ssl.PEM_cert_to_DER_cert(f.read()))
        # The expiry gauge follows the certificate in force (the expiry alert clears after a reload).
        self.assertEqual(self.expiry_metric(), not_after(cert2))
        # A broken file at the next SIGHUP: the running certificate stays.
        with open(self.cert, "w") as f:
            f.write("not a certificate\n")
        self.relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "the running certificate stays in force" in self.relay.read_log(),
                   what="the reload error in the log")
        self.assertEqual(peer_certificate(self.tls_port)[0], second)
        self.assertEqual(self.expiry_metric(), not_after(cert2))
        status, _, _ = https(self.tls_port, "GET", "/healthz")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
