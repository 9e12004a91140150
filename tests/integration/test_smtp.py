"""SMTP ingress against the real binary: delivery, pipelining, limits, smuggling."""

import os
import smtplib
import socket
import subprocess
import time
import unittest

from relay import RawClient, Relay, wait_until

MESSAGE = (
    "From: Sender <sender@example.com>\r\n"
    "To: Someone <rcpt@example.org>\r\n"
    "Subject: integration test\r\n"
    "Message-ID: <test-1@example.com>\r\n"
    "\r\n"
    "Hello,\r\n"
    ".a line that starts with a dot\r\n"
    "..two dots\r\n"
    "bye\r\n"
)


def body_of(eml_bytes):
    """The copy as the client sent it: without Return-Path, Delivered-To and our Received."""
    text = eml_bytes.decode("utf-8", "replace")
    lines = text.split("\r\n")
    assert lines[0].startswith("Return-Path: <"), lines[0]
    assert lines[1].startswith("Delivered-To: "), lines[1]
    assert lines[2].startswith("Received: from "), lines[2]
    i = 3
    while lines[i].startswith("\t"):
        i += 1
    return "\r\n".join(lines[i:])


class SmtpDeliveryTest(unittest.TestCase):
    def setUp(self):
        self.relay = Relay().start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def test_plain_message_reaches_outbox_byte_for_byte(self):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as s:
            s.ehlo("client.test")
            refused = s.sendmail("sender@example.com", ["rcpt@example.org"], MESSAGE.encode())
            self.assertEqual(refused, {})
        files = self.relay.wait_for_outbox(1)
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            data = f.read()
        self.assertEqual(body_of(data), MESSAGE)
        self.assertIn(b"Delivered-To: rcpt@example.org\r\n", data)
        self.assertIn(b"by relay.test (unsubrelay) with ESMTP id ", data)
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""))  # CRLF only
        wait_until(lambda: self.relay.spool_ids() == [], what="spool to empty")
        self.assertRegex(self.relay.read_log(), r"to=<rcpt@example.org>, relay=directory, delay=\d+, status=sent")

    def test_hundred_recipients_get_one_copy_each(self):
        rcpts = [f"user{i}@example.org" for i in range(100)]
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            self.assertEqual(s.sendmail("sender@example.com", rcpts, MESSAGE.encode()), {})
        files = self.relay.wait_for_outbox(100)
        self.assertEqual(len(files), 100)
        delivered_to = set()
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            delivered_to.add(data.split(b"\r\n")[1].split(b": ")[1].decode())
            self.assertEqual(body_of(data), MESSAGE)
        self.assertEqual(delivered_to, set(rcpts))

    def test_pipelining_whole_transaction_in_one_packet(self):
        c = RawClient(self.relay.port)
        self.assertEqual(c.reply()[0], 220)
        code, text = c.command("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertIn("PIPELINING", text)
        self.assertIn("SIZE", text)
        self.assertIn("8BITMIME", text)
        self.assertIn("ENHANCEDSTATUSCODES", text)
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 354)
        # The message, its end and the next transaction, all in one packet.
        c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<d@example.org>\r\nDATA\r\n")
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        self.assertIn("queued as", text)
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 354)
        c.send(b"Subject: q\r\n\r\nbody2\r\n.\r\nQUIT\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 221)
        c.close()
        self.assertEqual(len(self.relay.wait_for_outbox(3)), 3)

    def test_commands_and_replies(self):
        c = RawClient(self.relay.port)
        c.reply()
        self.assertEqual(c.command("MAIL FROM:<a@example.com>")[0], 503)  # before EHLO
        self.assertEqual(c.command("HELO client.test")[0], 250)
        self.assertEqual(c.command("VRFY postmaster")[0], 252)
        self.assertEqual(c.command("NOOP")[0], 250)
        self.assertEqual(c.command("HELP")[0], 214)
        self.assertEqual(c.command("RCPT TO:<b@example.org>")[0], 503)  # before MAIL
        self.assertEqual(c.command("DATA")[0], 503)
        self.assertEqual(c.command("MAIL FROM:<>")[0], 250)  # null sender is fine
        self.assertEqual(c.command("MAIL FROM:<a@example.com>")[0], 503)  # nested
        self.assertEqual(c.command("RSET")[0], 250)
        self.assertEqual(c.command("MAIL FROM:<a@example.com> BODY=8BITMIME")[0], 250)
        self.assertEqual(c.command("RCPT TO:<not an address>")[0], 501)
        self.assertEqual(c.command("RCPT TO:<b@example.org> NOTIFY=NEVER")[0], 555)
        self.assertEqual(c.command("BDAT 10 LAST")[0], 502)
        self.assertEqual(c.command("XYZZY")[0], 502)
        self.assertEqual(c.command("STARTTLS")[0], 502)  # no certificate configured
        self.assertEqual(c.command("QUIT")[0], 221)
        self.assertTrue(c.closed())

    def test_smtplib_send_message_with_8bit_body(self):
        body = "Subject: caf\u00e9\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nd\u00e9j\u00e0 vu\r\n"
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as s:
            s.sendmail("a@example.com", ["b@example.org"], body.encode("utf-8"), mail_options=["BODY=8BITMIME"])
        files = self.relay.wait_for_outbox(1)
        with open(files[0], "rb") as f:
            self.assertEqual(body_of(f.read()), body)

    def test_swaks_sends_a_message(self):
        result = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{self.relay.port}", "--from", "a@example.com",
             "--to", "b@example.org", "--header", "Subject: via swaks", "--body", "hello from swaks"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("250 2.0.0 Ok: queued as", result.stdout)
        files = self.relay.wait_for_outbox(1)
        with open(files[0], "rb") as f:
            data = f.read()
        self.assertIn(b"Subject: via swaks\r\n", data)
        self.assertIn(b"hello from swaks", data)


class SmugglingTest(unittest.TestCase):
    """CVE-2023-51764 class: only <CRLF>.<CRLF> ends DATA."""

    VARIANTS = {
        "LF.LF": b"\n.\n",
        "LF.CRLF": b"\n.\r\n",
        "CRLF.LF": b"\r\n.\n",
        "CR.CR": b"\r.\r",
        "bare LF in line": b"\nx\n",
        "bare CR in line": b"x\ry",
    }

    def test_each_smuggling_variant_is_refused_and_never_ends_data(self):
        with Relay() as relay:
            for name, separator in self.VARIANTS.items():
                with self.subTest(variant=name):
                    c = RawClient(relay.port)
                    c.reply()
                    c.command("EHLO client.test")
                    c.command("MAIL FROM:<a@example.com>")
                    c.command("RCPT TO:<b@example.org>")
                    self.assertEqual(c.command("DATA")[0], 354)
                    # The smuggled message: a server that takes the separator as the
                    # end of data would run the MAIL/RCPT/DATA inside as commands.
                    smuggled = (b"Subject: first\r\n\r\nfirst" + separator +
                                b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
                                b"Subject: smuggled\r\n\r\nsmuggled\r\n")
                    c.send(smuggled)
                    # Nothing must come back yet: the data has not ended.
                    c.sock.settimeout(0.5)
                    with self.assertRaises(socket.timeout):
                        c.sock.recv(100)
                    c.sock.settimeout(10)
                    c.send(b".\r\n")
                    code, text = c.reply()
                    self.assertEqual(code, 550, text)
                    self.assertIn("bare", text)
                    # The session goes on normally afterwards.
                    self.assertEqual(c.command("NOOP")[0], 250)
                    self.assertEqual(c.command("QUIT")[0], 221)
                    c.close()
            time.sleep(0.5)
            self.assertEqual(relay.outbox_files(), [])
            self.assertEqual(relay.spool_ids(), [])


    def test_nul_byte_is_refused_and_nothing_is_forwarded(self):
        """Issue 11: an upstream that strips NULs would read <CRLF><NUL>.<CRLF> as the end of data."""
        with Relay() as relay:
            c = RawClient(relay.port)
            c.reply()
            c.command("EHLO client.test")
            c.command("MAIL FROM:<a@example.com>")
            c.command("RCPT TO:<b@example.org>")
            self.assertEqual(c.command("DATA")[0], 354)
            c.send(b"Subject: first\r\n\r\nfirst\r\n\x00.\r\n"
                   b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
                   b"Subject: smuggled\r\n\r\nsmuggled\r\n")
            c.sock.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                c.sock.recv(100)  # <CRLF><NUL>.<CRLF> is not the end of data
            c.sock.settimeout(10)
            c.send(b".\r\n")
            code, text = c.reply()
            self.assertEqual(code, 550, text)
            self.assertIn("5.5.2", text)
            self.assertIn("NUL", text)
            # The session goes on; a clean message afterwards is delivered alone.
            c.command("MAIL FROM:<a@example.com>")
            c.command("RCPT TO:<b@example.org>")
            self.assertEqual(c.command("DATA")[0], 354)
            c.send(b"Subject: clean\r\n\r\nclean\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
            self.assertEqual(c.command("QUIT")[0], 221)
            c.close()
            files = relay.wait_for_outbox(1)
            time.sleep(0.5)
            files = relay.outbox_files()
            self.assertEqual(len(files), 1)
            with open(files[0], "rb") as f:
                data = f.read()
            self.assertIn(b"Subject: clean", data)
            self.assertNotIn(b"\x00", data)
            self.assertNotIn(b"smuggled", data)
            self.assertRegex(relay.read_log(), r"refused from .*NUL byte")


class LimitsTest(unittest.TestCase):
    def test_size_recipients_lines_and_errors(self):
        with Relay(smtp={"max_message_bytes": 2048, "max_recipients": 3, "max_errors": 6}) as relay:
            c = RawClient(relay.port)
            c.reply()
            code, text = c.command("EHLO client.test")
            self.assertIn("SIZE 2048", text)
            # SIZE= at MAIL.
            code, text = c.command("MAIL FROM:<a@example.com> SIZE=4096")
            self.assertEqual((code, text[4:9]), (552, "5.3.4"))
            # Recipients over the limit.
            self.assertEqual(c.command("MAIL FROM:<a@example.com> SIZE=100")[0], 250)
            for i in range(3):
                self.assertEqual(c.command(f"RCPT TO:<r{i}@example.org>")[0], 250)
            code, text = c.command("RCPT TO:<r4@example.org>")
            self.assertEqual((code, text[4:9]), (452, "4.5.3"))
            # Oversize after the dot, although SIZE= lied.
            self.assertEqual(c.command("DATA")[0], 354)
            c.send(b"Subject: big\r\n\r\n" + (b"x" * 900 + b"\r\n") * 5 + b".\r\n")
            code, text = c.reply()
            self.assertEqual((code, text[4:9]), (552, "5.3.4"), text)
            # A DATA line over 1000 octets.
            c.command("MAIL FROM:<a@example.com>")
            c.command("RCPT TO:<r@example.org>")
            self.assertEqual(c.command("DATA")[0], 354)
            c.send(b"Subject: long\r\n\r\n" + b"y" * 1200 + b"\r\n.\r\n")
            code, text = c.reply()
            self.assertEqual(code, 550, text)
            self.assertIn("line longer", text)
            # A command over 512 octets.
            code, text = c.command("NOOP " + "z" * 600)
            self.assertEqual(code, 500, text)
            # A line far over every limit is skipped, not buffered.
            c.send(b"A" * 200000 + b"\r\n")
            self.assertEqual(c.reply()[0], 500)
            # Errors so far: SIZE, oversize, long line, long command, skipped line; the 6th disconnects.
            code, text = c.command("JUNK")
            self.assertEqual(code, 502)
            code, text = c.reply()
            self.assertEqual((code, text[4:9]), (421, "4.7.0"), text)
            self.assertTrue(c.closed())
            self.assertEqual(relay.outbox_files(), [])

    def test_idle_client_times_out_with_421(self):
        with Relay(smtp={"command_timeout_seconds": 1}) as relay:
            c = RawClient(relay.port)
            c.reply()
            c.command("EHLO client.test")
            started = time.monotonic()
            code, text = c.reply()  # nothing sent: the server speaks first
            self.assertEqual((code, text[4:9]), (421, "4.4.2"), text)
            self.assertLess(time.monotonic() - started, 5)
            self.assertTrue(c.closed())

    def test_max_connections(self):
        with Relay(smtp={"max_connections": 2}) as relay:
            time.sleep(0.5)  # let the start-up probe connection finish
            a, b = RawClient(relay.port), RawClient(relay.port)
            self.assertEqual(a.reply()[0], 220)
            self.assertEqual(b.reply()[0], 220)
            c = RawClient(relay.port)
            code, text = c.reply()
            self.assertEqual((code, text[4:9]), (421, "4.7.0"), text)
            self.assertTrue(c.closed())
            a.command("QUIT")
            a.close()
            wait_until(lambda: RawClient(relay.port).reply()[0] == 220, what="a free connection slot")
            b.close()

    def test_web_client_is_disconnected(self):
        with Relay() as relay:
            c = RawClient(relay.port)
            c.reply()
            code, _ = c.command("GET / HTTP/1.1")
            self.assertEqual(code, 521)
            self.assertTrue(c.closed())


if __name__ == "__main__":
    unittest.main()
