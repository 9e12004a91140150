"""STARTTLS, implicit TLS, AUTH and the open-relay rules against the real binary."""

import base64
import smtplib
import socket
import ssl
import tempfile
import unittest

from relay import RawClient, Relay, client_tls_context, free_port, make_certificate, make_users_file

MESSAGE = b"Subject: tls\r\n\r\nsecret body\r\n"


class TlsAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.mkdtemp(prefix="unsubrelay-tls-")
        cls.cert, cls.key = make_certificate(cls.files)
        cls.users = make_users_file(cls.files, {"alice": "correct horse", "bob": "battery staple"})

    def relay(self, trusted=False, require_tls=True, implicit=False):
        smtp = {
            "tls": {"cert": self.cert, "key": self.key},
            "auth": {"users_file": self.users, "require_tls": require_tls},
            # Outside these networks, the loopback test client must authenticate to relay.
            "allow_networks": ["127.0.0.0/8"] if trusted else ["192.0.2.0/24"],
        }
        if implicit:
            self.tls_port = free_port()
            smtp["listen_tls"] = [f"127.0.0.1:{self.tls_port}"]
        return Relay(smtp=smtp)

    def test_starttls_then_send(self):
        with self.relay(trusted=True) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as s:
                code, text = s.ehlo("client.test")
                self.assertIn(b"STARTTLS", text)
                self.assertNotIn(b"AUTH", text)  # not before TLS
                s.starttls(context=client_tls_context())
                code, text = s.ehlo("client.test")
                self.assertNotIn(b"STARTTLS", text)
                self.assertIn(b"AUTH PLAIN LOGIN", text)
                self.assertEqual(s.sendmail("a@example.com", ["b@example.org"], MESSAGE), {})
            files = relay.wait_for_outbox(1)
            with open(files[0], "rb") as f:
                data = f.read()
            self.assertIn(b"with ESMTPS id", data)
            self.assertTrue(data.endswith(MESSAGE))

    def test_implicit_tls_listener(self):
        with self.relay(trusted=True, implicit=True) as relay:
            with smtplib.SMTP_SSL("127.0.0.1", self.tls_port, timeout=10, context=client_tls_context()) as s:
                s.ehlo("client.test")
                self.assertEqual(s.sendmail("a@example.com", ["b@example.org"], MESSAGE), {})
            self.assertEqual(len(relay.wait_for_outbox(1)), 1)

    def test_auth_plain_and_login_succeed_after_tls_and_allow_relay(self):
        with self.relay() as relay:
            for mechanism in ("PLAIN", "LOGIN"):
                with self.subTest(mechanism=mechanism):
                    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as s:
                        s.starttls(context=client_tls_context())
                        s.ehlo("client.test")
                        s.user, s.password = "alice", "correct horse"
                        code, text = s.auth(mechanism, getattr(s, "auth_" + mechanism.lower()),
                                            initial_response_ok=(mechanism == "PLAIN"))
                        self.assertEqual(code, 235, text)
                        self.assertEqual(s.sendmail("a@example.com", ["b@example.org"], MESSAGE), {})
            files = relay.wait_for_outbox(2)
            with open(files[0], "rb") as f:
                self.assertIn(b"with ESMTPSA id", f.read())
            self.assertIn("sasl_username=alice", relay.read_log())

    def test_auth_failure_and_no_relay_without_auth(self):
        with self.relay() as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as s:
                s.starttls(context=client_tls_context())
                s.ehlo("client.test")
                with self.assertRaises(smtplib.SMTPAuthenticationError) as caught:
                    s.login("alice", "wrong password")
                self.assertEqual(caught.exception.smtp_code, 535)
                with self.assertRaises(smtplib.SMTPAuthenticationError):
                    s.login("mallory", "correct horse")  # unknown user
                s.mail("a@example.com")
                code, text = s.rcpt("b@example.org")
                self.assertEqual(code, 554, text)
                self.assertIn(b"5.7.1", text)
            self.assertIn("AUTH failed for user alice", relay.read_log())
            self.assertEqual(relay.outbox_files(), [])

    def test_auth_refused_before_tls(self):
        with self.relay() as relay:
            c = RawClient(relay.port)
            c.reply()
            c.command("EHLO client.test")
            plain = base64.b64encode(b"\0alice\0correct horse").decode()
            code, text = c.command("AUTH PLAIN " + plain)
            self.assertEqual(code, 538, text)
            c.close()

    def test_auth_without_tls_when_configured(self):
        with self.relay(require_tls=False) as relay:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as s:
                s.ehlo("client.test")
                self.assertTrue(s.has_extn("auth"))
                s.login("bob", "battery staple")
                self.assertEqual(s.sendmail("a@example.com", ["b@example.org"], MESSAGE), {})
            self.assertEqual(len(relay.wait_for_outbox(1)), 1)

    def test_no_open_relay_for_any_address_form(self):
        tricky = [
            "<victim@example.org>",
            "<user%example.org@relay.test>",          # percent hack
            "<@relay.test:victim@example.org>",        # source route
            "<@a.test,@b.test:victim@example.org>",    # multi-hop source route
            '<"victim@example.org"@relay.test>',       # quoted local part with @
            '<"user%victim.example"@relay.test>',
            "<victim@[192.0.2.1]>",                     # address literal
            "<victim!example.org@relay.test>",          # bang path
            "victim@example.org",                       # no brackets
        ]
        with self.relay() as relay:
            c = RawClient(relay.port)
            c.reply()
            c.command("EHLO client.test")
            self.assertEqual(c.command("MAIL FROM:<a@example.com>")[0], 250)
            for address in tricky:
                code, text = c.command("RCPT TO:" + address)
                self.assertEqual(code, 554, f"{address}: {text}")
                self.assertIn("5.7.1", text)
                self.assertIn("Relay access denied", text)
                if c.closed(timeout=0.05):
                    self.fail("disconnected early")
            c.close()
            self.assertEqual(relay.outbox_files(), [])


class StartTlsInjectionTest(unittest.TestCase):
    """CVE-2011-0411: commands pipelined with STARTTLS are discarded, state is reset."""

    def test_pipelined_commands_after_starttls_are_discarded(self):
        files = tempfile.mkdtemp(prefix="unsubrelay-tls-")
        cert, key = make_certificate(files)
        with Relay(smtp={"tls": {"cert": cert, "key": key}}) as relay:
            sock = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            f = sock.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220"))
            sock.sendall(b"EHLO client.test\r\n")
            while True:
                line = f.readline()
                if line[3:4] == b" ":
                    break
            # The injected commands ride in the same packet as STARTTLS.
            sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\n")
            self.assertTrue(f.readline().startswith(b"220 2.0.0"))
            tls = client_tls_context().wrap_socket(sock, server_hostname="localhost")
            tf = tls.makefile("rb")
            # Had the injected MAIL run, RCPT would now get 250; EHLO state must also be gone.
            tls.sendall(b"RCPT TO:<victim@example.org>\r\n")
            reply = tf.readline()
            self.assertTrue(reply.startswith(b"503"), reply)
            tls.sendall(b"MAIL FROM:<a@example.com>\r\n")
            reply = tf.readline()
            self.assertTrue(reply.startswith(b"503"), reply)  # EHLO forgotten
            self.assertIn(b"HELO/EHLO first", reply)
            tls.sendall(b"QUIT\r\n")
            self.assertTrue(tf.readline().startswith(b"221"))
            tls.close()
            self.assertIn("discarded", relay.read_log())


if __name__ == "__main__":
    unittest.main()
