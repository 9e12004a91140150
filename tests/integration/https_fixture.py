#!/usr/bin/env python3
"""A local HTTPS server for fetch tests: python3 http.server behind ssl.

    https_fixture.py CERT KEY PORT_FILE [BODY_FILE]

Serves on 127.0.0.1 (a free port, written to PORT_FILE once listening):
  /certs/cert.pem   200, BODY_FILE's content (the signing certificate), with any query
  /certs/redirect   302 to https://sns.us-east-1.amazonaws.com.evil.example/
  /certs/big        200, 2 MB of 'x'
  /certs/hang       never answers (sleeps 120 s)
  /confirm?...      200, a small XML answer like SNS's ConfirmSubscription
  anything else     404
Every request line is appended to PORT_FILE + ".log", so a test can check
what was (or was not) fetched, and every accepted connection adds a line
"# connection" (also one whose TLS handshake failed). Runs until killed.

HTTPS_FIXTURE_CIPHERS (environment), when set, makes the server speak TLS 1.2
only with these OpenSSL cipher names (security level 0: static RSA and CBC
suites too), so a test can check that a client refuses them.
"""
import http.server
import os
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    body_file = None
    log_file = None

    def log_message(self, fmt, *args):  # quiet on stderr, recorded in the log file
        pass

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with open(self.log_file, "a") as log:
            log.write(self.path + "\n")
        if self.path.split("?")[0] == "/certs/cert.pem":
            with open(self.body_file, "rb") as f:
                self.answer(200, f.read(), [("Content-Type", "application/x-pem-file")])
        elif self.path == "/certs/redirect":
            self.answer(302, b"", [("Location", "https://sns.us-east-1.amazonaws.com.evil.example/")])
        elif self.path == "/certs/big":
            self.answer(200, b"x" * (2 * 1024 * 1024))
        elif self.path.startswith("/certs/hang"):
            time.sleep(120)
        elif self.path.startswith("/confirm?"):
            self.answer(200, b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>"
                             b"<SubscriptionArn>arn:aws:sns:us-east-1:123456789012:ses-feedback:1</SubscriptionArn>"
                             b"</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>")
        else:
            self.answer(404, b"not found")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        # The TLS handshake happens in accept(): log the connection whether it succeeds or not.
        try:
            return super().get_request()
        finally:
            with open(Handler.log_file, "a") as log:
                log.write("# connection\n")

    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer (the size-limit test) is expected here.
        with open(Handler.log_file, "a") as log:
            log.write("# client %s:%d went away\n" % client_address)


def main():
    cert, key, port_file = sys.argv[1:4]
    Handler.body_file = sys.argv[4] if len(sys.argv) > 4 else cert
    Handler.log_file = port_file + ".log"
    open(Handler.log_file, "w").close()
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if os.environ.get("HTTPS_FIXTURE_CIPHERS"):
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(os.environ["HTTPS_FIXTURE_CIPHERS"] + ":@SECLEVEL=0")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
