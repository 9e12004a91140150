"""Test harness: runs the real unsubrelay binary on free loopback ports.

Each Relay gets its own temporary directory (spool, outbox, config), a free
port picked by the kernel, and is always stopped: tests use it as a context
manager or call stop() in tearDown.
"""

import atexit
import glob
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

# Tests close what they can; a socket left to the garbage collector is not a failure.
warnings.simplefilter("ignore", ResourceWarning)

BIN = os.environ.get("UNSUBRELAY_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "debug", "unsubrelay")


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


_handed_out = set()


def free_port():
    """A loopback port free now that this process has not handed out before: bind(0)
    may return a port it returned a moment ago (once gave a relay's implicit-TLS
    listener and its HTTP listener the same port)."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("no loopback port left that was not handed out already")


def wait_until(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_certificate(directory, name="localhost", days=2):
    """A self-signed certificate and key for 127.0.0.1 / localhost, valid for days."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
         "-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


def not_after(pem):
    """notAfter of a PEM certificate in unix seconds, as openssl reads it."""
    end = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-enddate", "-dateopt", "iso_8601"],
                         capture_output=True, text=True, check=True).stdout
    return int(subprocess.run(["date", "-u", "-d", end.split("=", 1)[1].strip(), "+%s"],
                              capture_output=True, text=True, check=True).stdout)


def start_webhook_receiver(test, tls=None):
    """A local HTTP server that answers every POST with 204 and keeps its raw
    body; stopped at the test's cleanup. Returns (port, bodies). tls: an
    ssl.SSLContext to serve HTTPS with (a failed handshake drops that connection)."""
    bodies = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test.addCleanup(server.server_close)
    test.addCleanup(server.shutdown)
    return server.server_port, bodies


def make_users_file(directory, users):
    """users: {name: password}; hashes with SHA-512 crypt ($6$) as mkpasswd does."""
    path = os.path.join(directory, "users")
    with open(path, "w") as f:
        f.write("# test users\n")
        for name, password in users.items():
            hashed = subprocess.run(["openssl", "passwd", "-6", password], check=True,
                                    capture_output=True, text=True).stdout.strip()
            f.write(f"{name}:{hashed}\n")
    return path


def client_tls_context(maximum=None, minimum=None, ciphers=None):
    """A client context that trusts any certificate; ciphers may name weak TLS 1.2 suites
    (security level 0), so that a test can check the server refuses them."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maximum and maximum < ssl.TLSVersion.TLSv1_2:
        minimum = minimum or maximum  # really offer the old version, so that the server must refuse it
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    return ctx


def http_request(connection, method, path, body=None, headers=None):
    """One request on a fresh http.client connection, closed after: (status, headers, body bytes)."""
    try:
        connection.request(method, path, body=body, headers=headers or {})
        r = connection.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        connection.close()


_running = []


@atexit.register
def _stop_leftovers():
    """Whatever a failed test left running is killed when the test process ends."""
    for proc in _running:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Relay:
    """One unsubrelay process with its own directory and ports."""

    def __init__(self, smtp=None, spool=None, upstream=None, log=None, extra=None, directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="unsubrelay-test-")
        self.port = free_port()
        self.smtp = {"listen": [f"127.0.0.1:{self.port}"], "hostname": "relay.test",
                     "allow_networks": ["127.0.0.0/8"]}
        self.smtp.update(smtp or {})
        self.spool = {"path": "var/spool", "retry_min_seconds": 1, "retry_max_seconds": 2}
        self.spool.update(spool or {})
        self.upstream = {"kind": "directory", "directory": "var/outbox"}
        self.upstream.update(upstream or {})
        self.http_port = free_port()
        self.extra = {"http": {"listen": [f"127.0.0.1:{self.http_port}"],
                               "page_template": os.path.join(REPO, "conf", "unsubscribe.html")}}
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(self.extra.get(key), dict):
                self.extra[key].update(value)
            else:
                self.extra[key] = value
        self.log = log or {"level": "debug"}
        self.proc = None
        self.config_path = os.path.join(self.dir, "unsubrelay.yaml")
        self.log_path = os.path.join(self.dir, "relay.log")
        self.write_config()

    # JSON is valid YAML, so the config needs no YAML library.
    def write_config(self):
        config = {"smtp": self.smtp, "upstream": self.upstream, "spool": self.spool, "log": self.log}
        for key, value in self.extra.items():  # sections merge one level deep
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)

    @property
    def outbox(self):
        return os.path.join(self.dir, self.upstream["directory"])

    @property
    def spool_dir(self):
        return os.path.join(self.dir, self.spool["path"])

    def start(self, wait=True, preexec_fn=None):
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "run", "-c", self.config_path], cwd=self.dir,
                                     stdout=self.logfile, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        _running.append(self.proc)
        if wait:
            wait_until(self._accepting, what=f"relay on port {self.port} (log: {self.read_log()[-2000:]})")
        return self

    def _accepting(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"relay exited with {self.proc.returncode}: {self.read_log()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.recv(512)
                s.sendall(b"QUIT\r\n")
            return True
        except OSError:
            return False

    def stop(self, timeout=40):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("relay did not stop within %ss of SIGTERM" % timeout)
        if self.proc:
            self.logfile.close()
        code = self.proc.returncode if self.proc else 0
        self.proc = None
        if code != 0:  # the caller asserts the code; the log says why
            sys.stderr.write(f"relay exited with {code}; its log ends:\n{self.read_log()[-4000:]}\n")
        return code

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logfile.close()
        self.proc = None

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def http(self, method, path, body=None, headers=None):
        """One HTTP request to the relay's unsubscribe service: (status, headers, body bytes)."""
        import http.client
        return http_request(http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10),
                            method, path, body, headers)

    def outbox_files(self):
        return sorted(glob.glob(os.path.join(self.outbox, "*.eml")))

    def wait_for_outbox(self, count, timeout=30):
        return wait_until(lambda: len(self.outbox_files()) >= count and self.outbox_files(), timeout,
                          what=f"{count} file(s) in the outbox")

    def spool_ids(self):
        """Every queued message: queue files and segment records alike (spool.format: segments is the
        default), as `unsubrelay queue list` shows them beside the running relay or without one."""
        out = self.cli("queue", "list")
        if out.returncode != 0:
            raise AssertionError(f"queue list exited with {out.returncode}: {out.stderr}")
        return sorted(set(re.findall(r"^([0-9A-F]{16})", out.stdout, re.M)))

    def queue_file_ids(self):
        """The queue files in spool/messages/ only (spool.format: files, or a message past segment_max_kb)."""
        d = os.path.join(self.spool_dir, "messages")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def cli(self, *args):
        return subprocess.run([BIN, *args, "-c", self.config_path], cwd=self.dir,
                              capture_output=True, text=True, timeout=60)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        # A relay that exits non-zero (an ASan/LSan abort at shutdown, a failed drain)
        # fails the test, unless the test is already failing for its own reason.
        code = self.stop()
        if exc_type is None and code != 0:
            raise AssertionError(f"relay exited with {code} after SIGTERM: {self.read_log()[-3000:]}")


class RawClient:
    """A byte-level SMTP client, for what smtplib will not send."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """Reads one whole (possibly multi-line) reply; returns (code, text)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed; got so far: %r" % (self.buf,))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("ascii", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(lines[-1][:3]), "\n".join(lines)

    def command(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def closed(self, timeout=5):
        """True when the server closed the connection (reads EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()
