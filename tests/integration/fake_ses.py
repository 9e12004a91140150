"""A test upstream that behaves like Amazon SES's SMTP interface.

Built on aiosmtpd (Debian's python3-aiosmtpd). Like SES it requires STARTTLS
and then AUTH (and refuses AUTH before TLS with 538), and answers each
accepted message with "250 Ok <message-id>". Tests script failures:
replies for chosen recipients (454 throttling, 421, 550), or dropping the
connection after the data instead of answering.
"""

import itertools
import os
import ssl
import subprocess
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from relay import free_port


def make_ca(directory, name):
    key, cert = os.path.join(directory, f"{name}-ca.key"), os.path.join(directory, f"{name}-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name} test CA", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return key, cert


def make_server_cert(directory, ca_key, ca_cert, hostname="localhost"):
    key, csr, cert = (os.path.join(directory, f"server.{ext}") for ext in ("key", "csr", "pem"))
    ext = os.path.join(directory, "san.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{hostname},IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def make_sns_files(directory):
    """A CA and a server certificate for the fake SES and SNS endpoints, and the SNS
    signing certificate and its key (what AWS keeps secret): (ca, cert, key, sign_key, sign_cert)."""
    ca_key, ca = make_ca(directory, "ca")
    cert, key = make_server_cert(directory, ca_key, ca)
    sign_key = os.path.join(directory, "sign-key.pem")
    sign_cert = os.path.join(directory, "sign-cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=sns.amazonaws.com", "-keyout", sign_key, "-out", sign_cert],
                   check=True, capture_output=True)
    return ca, cert, key, sign_key, sign_cert


class Received:
    def __init__(self, mail_from, rcpt_tos, content, message_id):
        self.mail_from, self.rcpt_tos, self.content, self.message_id = mail_from, rcpt_tos, content, message_id


class SesHandler:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []          # Received, in arrival order
        self.rcpt_rules = {}        # address -> list of replies to give before accepting
        self.data_rules = []        # replies (or "drop") for the next DATA phases
        self.connections = 0
        self.peers = set()
        self.auth_failures = 0
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            rules = self.rcpt_rules.get(address)
            if rules:
                reply = rules.pop(0)
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            rule = self.data_rules.pop(0) if self.data_rules else None
            if rule == "drop":
                server.transport.close()
                return "421 dropped"
            if rule:
                return rule
            message_id = "0100%012x-%s-000000" % (next(self.counter), uuid.uuid4())
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                          message_id))
        return f"250 Ok {message_id}"


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        # aiosmtpd calls connection_made again after STARTTLS: count peers, not calls.
        with self.event_handler.lock:
            self.event_handler.peers.add(transport.get_extra_info("peername"))
            self.event_handler.connections = len(self.event_handler.peers)


class FakeSes(Controller):
    """Starts on a free port; implicit=True for port-465-style TLS."""

    def __init__(self, cert, key, users=None, implicit=False, require_auth=True, configure_tls=None):
        """configure_tls: called with the server's ssl.SSLContext (protocols, ciphers)."""
        self.handler = SesHandler()
        self.users = users if users is not None else {"AKIATEST": "ses-secret"}
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if configure_tls:
            configure_tls(context)
        self.port = free_port()
        kwargs = dict(hostname="127.0.0.1", port=self.port, server_hostname="email-smtp.test",
                      authenticator=self.authenticate, auth_required=require_auth, auth_require_tls=True)
        if implicit:
            # aiosmtpd 1.4 only counts STARTTLS as TLS for auth_require_tls; the
            # implicit-TLS socket is encrypted from the first byte anyway.
            kwargs.update(ssl_context=context, auth_require_tls=False)
        else:
            kwargs.update(tls_context=context, require_starttls=True)
        super().__init__(self.handler, **kwargs)
        self.implicit = implicit
        self.client_context = ssl.create_default_context()
        self.client_context.check_hostname = False
        self.client_context.verify_mode = ssl.CERT_NONE

    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        # aiosmtpd's start-up probe must speak TLS on an implicit-TLS port.
        if not self.implicit:
            return super()._trigger_server()
        import socket
        with socket.create_connection((self.hostname, self.port)) as raw:
            with self.client_context.wrap_socket(raw) as s:
                s.recv(1024)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True)
        with self.handler.lock:
            self.handler.auth_failures += 1
        return AuthResult(success=False, handled=False)

    def __enter__(self):
        self.start()
        time.sleep(0.2)  # the start-up probe's connection_made may land after start() returns
        with self.handler.lock:
            self.handler.connections = 0  # forget the start-up probe
            self.handler.peers.clear()
        return self

    def __exit__(self, *exc):
        self.stop()
