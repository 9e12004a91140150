"""Issue 11: one TLS profile on every TLS context (docs/tls.md).

Mozilla's "intermediate" profile: TLS 1.2 only with ECDHE key exchange and AEAD
ciphers (AES-GCM, ChaCha20-Poly1305), the server's cipher order, TLS 1.3 as
OpenSSL ships it. Checked with Python's ssl module on the SMTP STARTTLS and
implicit-TLS listeners, with tls.profile: modern (TLS 1.3 only), on the upstream
client (it must refuse an upstream that only offers static-RSA or CBC suites),
on the webhook client (the same, and tls.profile: modern refuses a TLS 1.2
receiver), and by Debian's testssl.sh against the STARTTLS port: no finding above LOW.
"""

import json
import logging
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
from unittest import mock

from fake_ses import FakeSes, make_ca, make_server_cert
from relay import RawClient, Relay, free_port, start_webhook_receiver, wait_until
from relay import client_tls_context as client_context

TLS12 = ssl.TLSVersion.TLSv1_2
WEAK_TLS12 = ("AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA",
              "ECDHE-RSA-AES256-SHA384", "DHE-RSA-AES128-GCM-SHA256")
STRONG_TLS12 = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305")


def starttls(port, ctx, local_ports=None):
    """(cipher name, protocol) negotiated after STARTTLS, or raises ssl.SSLError;
    local_ports: a list the client's own port is appended to."""
    c = RawClient(port)
    try:
        if local_ports is not None:
            local_ports.append(c.sock.getsockname()[1])
        c.reply()
        c.command("EHLO client.test")
        code, text = c.command("STARTTLS")
        assert code == 220, text
        with ctx.wrap_socket(c.sock, server_hostname="localhost") as s:
            return s.cipher()[0], s.version()
    finally:
        c.close()


def implicit(port, ctx, local_ports=None):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if local_ports is not None:
            local_ports.append(raw.getsockname()[1])
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.recv(512)
            return s.cipher()[0], s.version()


class HandshakeErrors(logging.Handler):
    """The TLS errors aiosmtpd (FakeSes) logs for failed STARTTLS handshakes, by OpenSSL reason."""

    def __init__(self, test):
        super().__init__()
        self.reasons = []
        logger = logging.getLogger("mail.log")
        logger.addHandler(self)
        test.addCleanup(logger.removeHandler, self)

    def emit(self, record):
        error = record.exc_info[1] if record.exc_info else None
        while error is not None and not isinstance(error, ssl.SSLError):
            error = error.__cause__
        if error is not None:
            self.reasons.append(error.reason)


def start_tls_receiver(test, cert, key, configure):
    """An HTTPS webhook receiver on 127.0.0.1 answering 204 and keeping each body;
    configure(ctx) sets its protocols and ciphers. Returns (port, bodies)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    configure(ctx)
    return start_webhook_receiver(test, tls=ctx)


def tls12_only(ciphers):
    def configure(ctx):
        ctx.maximum_version = TLS12
        ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    return configure


def make_testssl_certificate(directory):
    """A CA testssl is told to trust, and a 1-year server certificate with a CRL URI
    (testssl rates a certificate with neither CRL nor OCSP URI as a finding)."""
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                    "-subj", "/CN=unsubrelay test CA", "-keyout", ca_key, "-out", ca],
                   check=True, capture_output=True)
    key, csr, cert = (os.path.join(directory, f"server.{e}") for e in ("key", "csr", "pem"))
    ext = os.path.join(directory, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\ncrlDistributionPoints=URI:http://crl.invalid/ca.crl\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-days", "365", "-sha256", "-extfile", ext, "-out", cert], check=True, capture_output=True)
    return ca, cert, key


class TlsProfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="unsubrelay-tls-")
        cls.ca, cls.cert, cls.key = make_testssl_certificate(cls.dir)

    def relay(self, profile=None):
        self.tls_port = free_port()
        extra = {"tls": {"profile": profile}} if profile else {}
        return Relay(smtp={"tls": {"cert": self.cert, "key": self.key},
                           "listen_tls": [f"127.0.0.1:{self.tls_port}"]}, extra=extra)

    def assert_refused(self, relay, connect, port, ctx, client_reason, log_reason):
        """The client's handshake fails with client_reason, and the relay logs the refusal of that
        very connection: "TLS handshake failed from [127.0.0.1]:CLIENT-PORT: log_reason"."""
        local_ports = []
        with self.assertRaises(ssl.SSLError) as refused:
            connect(port, ctx, local_ports)
        self.assertEqual(refused.exception.reason, client_reason)
        line = f"TLS handshake failed from [127.0.0.1]:{local_ports[0]}: {log_reason}"
        wait_until(lambda: line in relay.read_log(), what=line)

    def test_intermediate_on_starttls_and_implicit_tls(self):
        with self.relay() as relay:
            for name, port, connect in (("STARTTLS", relay.port, starttls), ("implicit", self.tls_port, implicit)):
                for weak in WEAK_TLS12:
                    with self.subTest(listener=name, cipher=weak):
                        self.assert_refused(relay, connect, port, client_context(TLS12, ciphers=weak),
                                            "SSLV3_ALERT_HANDSHAKE_FAILURE", "no shared cipher")
                for strong in STRONG_TLS12:
                    with self.subTest(listener=name, cipher=strong):
                        self.assertEqual(connect(port, client_context(TLS12, ciphers=strong)), (strong, "TLSv1.2"))
                with self.subTest(listener=name, version="TLSv1.1"):
                    self.assert_refused(relay, connect, port, client_context(ssl.TLSVersion.TLSv1_1, ciphers="ALL"),
                                        "TLSV1_ALERT_PROTOCOL_VERSION", "unsupported protocol")
                self.assertEqual(connect(port, client_context())[1], "TLSv1.3")
                # The server's order decides: the client prefers ChaCha20, the server AES-128-GCM.
                chosen = connect(port, client_context(TLS12, ciphers="ECDHE-RSA-CHACHA20-POLY1305:"
                                                                     "ECDHE-RSA-AES128-GCM-SHA256"))
                self.assertEqual(chosen[0], "ECDHE-RSA-AES128-GCM-SHA256", name)

    def test_modern_is_tls13_only(self):
        with self.relay("modern") as relay:
            tls12 = client_context(TLS12, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
            self.assert_refused(relay, starttls, relay.port, tls12, "TLSV1_ALERT_PROTOCOL_VERSION",
                                "unsupported protocol")
            self.assertEqual(starttls(relay.port, client_context())[1], "TLSv1.3")

    def test_upstream_client_refuses_weak_suites(self):
        files = tempfile.mkdtemp(prefix="unsubrelay-tls-up-")
        ca_key, ca = make_ca(files, "up")
        cert, key = make_server_cert(files, ca_key, ca)
        user, password = os.path.join(files, "u"), os.path.join(files, "p")
        for path, text in ((user, "AKIATEST\n"), (password, "ses-secret\n")):
            with open(path, "w") as f:
                f.write(text)

        def only(ciphers):
            def configure(ctx):
                ctx.maximum_version = TLS12
                ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
            return configure

        server_errors = HandshakeErrors(self)
        for ciphers, delivered in (("AES256-SHA:AES128-GCM-SHA256", False), ("ECDHE-RSA-AES128-SHA", False),
                                   ("ECDHE-RSA-AES256-GCM-SHA384", True)):
            del server_errors.reasons[:]
            with self.subTest(upstream=ciphers), FakeSes(cert, key, configure_tls=only(ciphers)) as ses, \
                    Relay(upstream={"kind": "ses", "host": "localhost", "port": ses.port, "ca_file": ca,
                                    "username_file": user, "password_file": password}) as relay:
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                    s.sendmail("news@example.com", ["a@example.org"], b"Subject: t\r\n\r\nbody\r\n")
                if delivered:
                    wait_until(lambda: len(ses.handler.messages) == 1, what="delivery over ECDHE-GCM")
                else:
                    # The upstream's side: the relay offered none of its suites. The relay's side: this
                    # upstream's TLS handshake failed, and the copy waits for a retry.
                    wait_until(lambda: "NO_SHARED_CIPHER" in server_errors.reasons, what="the upstream's refusal")
                    wait_until(lambda: "status=deferred" in relay.read_log(), what="the deferral")
                    self.assertEqual(ses.handler.messages, [])
                    self.assertRegex(relay.read_log(), r"to=<a@example\.org>, relay=localhost, delay=\d+, "
                                                       r"status=deferred \(451 4\.4\.1 TLS handshake with "
                                                       rf"localhost\[127\.0\.0\.1\]:{ses.port} failed: ")

    def webhook_relay(self, receivers, profile=None):
        """A relay posting events to https://localhost:PORT/hook for each receiver port; the test CA
        is the system store for its process (SSL_CERT_FILE), as webhooks use the system CAs."""
        secret = os.path.join(self.dir, "webhook-secret")
        with open(secret, "w") as f:
            f.write("hook-secret\n")
        extra = {"webhooks": [{"url": f"https://localhost:{port}/hook", "secret_file": secret} for port in receivers]}
        if profile:
            extra["tls"] = {"profile": profile}
        relay = Relay(extra=extra)
        with mock.patch.dict(os.environ, {"SSL_CERT_FILE": self.ca}):
            relay.start()
        self.addCleanup(relay.stop)
        return relay

    def unsubscribe_one(self, relay):
        """An event for the webhooks: a campaign copy's one-click unsubscribe."""
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
            s.sendmail("news@example.com", ["reader@example.org"],
                       b"From: news@example.com\r\nTo: list@example.org\r\nSubject: c\r\nX-Campaign-Id: 7\r\n"
                       b"X-Launch-List-Id: 8\r\n\r\nUnsubscribe: *|UNSUBSCRIBE|*\r\n")
        [copy] = relay.wait_for_outbox(1)
        with open(copy, "rb") as f:
            link = re.search(rb"List-Unsubscribe: <[^>]*(/u/[A-Za-z0-9_-]+)>", f.read()).group(1).decode()
        status, _, _ = relay.http("POST", link, "List-Unsubscribe=One-Click",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200)

    def test_webhook_client_uses_the_profile(self):
        """The webhook client builds its context from tls.profile / tls.ciphers: with the default
        profile it refuses a receiver offering only static-RSA or CBC suites and posts to an ECDHE-GCM
        one; with tls.profile: modern it refuses a TLS 1.2 receiver and posts to a TLS 1.3 one."""
        weak, weak_bodies = start_tls_receiver(self, self.cert, self.key, tls12_only("AES256-SHA:ECDHE-RSA-AES128-SHA"))
        strong, strong_bodies = start_tls_receiver(self, self.cert, self.key, tls12_only("ECDHE-RSA-AES128-GCM-SHA256"))
        tls13, tls13_bodies = start_tls_receiver(self, self.cert, self.key, lambda ctx: None)
        for profile, refused, accepted, accepted_bodies, refused_bodies in (
                (None, weak, strong, strong_bodies, weak_bodies),
                ("modern", strong, tls13, tls13_bodies, strong_bodies)):
            with self.subTest(profile=profile or "intermediate"):
                del strong_bodies[:]
                relay = self.webhook_relay([refused, accepted], profile)
                self.unsubscribe_one(relay)
                wait_until(lambda: len(accepted_bodies) == 1, timeout=30, what="the event at the good receiver")
                self.assertEqual(json.loads(accepted_bodies[0])["action"], "unsubscribe")
                wait_until(lambda: re.search(rf"webhook https://localhost:{refused}/hook: event \d+ not accepted",
                                             relay.read_log()), what="the refused receiver's failure")
                self.assertEqual(refused_bodies, [])
                self.assertEqual(relay.stop(), 0)

    def test_testssl_finds_nothing_above_low_on_starttls(self):
        self.assertIsNotNone(shutil.which("testssl"), "testssl: Debian's testssl.sh (scripts/install-deps.sh)")
        with self.relay() as relay:
            out = os.path.join(self.dir, "testssl.json")
            started = time.monotonic()
            # Every check of a default run but client simulation (-c, dozens of handshakes that
            # judge nothing) and HTTP headers (-h, not for SMTP): protocols, cipher categories,
            # forward secrecy, server preference, server defaults (certificate, resumption),
            # and every vulnerability check (-U: Heartbleed ... LUCKY13, RC4).
            run = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--add-ca", self.ca,
                                  "-p", "-s", "-f", "-P", "-S", "-U", "--jsonfile", out,
                                  "--starttls", "smtp", f"127.0.0.1:{relay.port}"],
                                 capture_output=True, text=True, timeout=570)
            seconds = time.monotonic() - started
            self.assertTrue(os.path.exists(out), run.stdout[-3000:] + run.stderr[-2000:])
            with open(out) as f:
                findings = json.load(f)
            bad = [f"{x['id']}: {x['severity']}: {x['finding']}" for x in findings
                   if x.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")]
            self.assertEqual(bad, [], f"testssl ({seconds:.0f}s) found:\n" + "\n".join(bad))
            warnings = [f"{x['id']}: {x['finding']}" for x in findings if x.get("severity") == "WARN"]
            print(f"\ntestssl: {len(findings)} results, none above LOW, in {seconds:.0f}s; scan warnings: {warnings}",
                  flush=True)


if __name__ == "__main__":
    unittest.main()
