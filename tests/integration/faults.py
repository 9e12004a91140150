"""Fault-injection helpers: a recording SMTP sink with faults on demand, scale, memory.

FAULT_SCALE=full (scripts/faults.sh) runs the sizes issue 7 names (10 rounds of
1,000 messages, a 1 GiB DATA stream, 100,000 RCPTs, 2,000 idle connections);
the default (ctest, CI) runs the same tests smaller so every CI run proves them.
"""

import os
import re
import smtplib
import socket
import socketserver
import threading
import time

FULL = os.environ.get("FAULT_SCALE") == "full"


def scale(ci, full):
    return full if FULL else ci


def report(line):
    """Figures for docs/faults.md: printed, and appended to FAULT_REPORT when set."""
    print("\nFAULT REPORT: " + line, flush=True)
    path = os.environ.get("FAULT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def peak_rss_mb(pid):
    """VmHWM: the process's peak resident set size so far."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def raise_fd_limit(n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def message(test_id, size=0):
    pad = ("x" * 76 + "\r\n") * (size // 78)
    return (f"From: <sender@example.com>\r\nSubject: fault {test_id}\r\nX-Test-Id: {test_id}\r\n\r\n"
            f"{pad}body of {test_id}\r\nEND-OF-MESSAGE\r\n").encode()


def send(port, test_id, rcpts=None, timeout=30):
    """One message over real SMTP; returns the queue id from the 250, raises otherwise."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
        s.ehlo("client.test")
        s.mail("sender@example.com")
        for r in rcpts or [f"rcpt-{test_id}@example.org"]:
            s.rcpt(r)
        code, text = s.data(message(test_id))
        if code != 250:
            raise smtplib.SMTPResponseException(code, text)
        return re.search(rb"queued as ([0-9A-F]{16})", text).group(1).decode()


def send_concurrently(count, senders, send_one):
    """send_one(n) for every n below count, from senders threads at once (the
    load of many clients); returns the failures, each as "n: error"."""
    ids = iter(range(count))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                n = next(ids, None)
            if n is None:
                return
            try:
                send_one(n)
            except Exception as e:  # noqa: BLE001 - returned to the caller
                errors.append(f"{n}: {e!r}")

    threads = [threading.Thread(target=worker) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class Sink:
    """A recording SMTP server on a free loopback port (the upstream).

    Faults, each applied to every n-th transaction (0 = never):
      delay          seconds to wait before answering the end of DATA (slow upstream)
      drop_every     close the connection half-way through the DATA stream
      throttle_every answer MAIL FROM with SES's 454 throttling reply
      lose_reply_every  read the whole message, then close without a reply
      lenient        after a refused MAIL FROM, still accept RCPT and DATA (as some
                     pipelining servers do): the client must then send an empty message
      close_after_message  close the connection silently after each 250 to a message
                     (a server that drops idle sessions, as SES does)
    port: 0 for a free one, or a given port (an upstream that comes back where it was).
    A message counts as received when its 250 was sent, or its reply swallowed.
    connections and verbs (a count per command) tell how the client used it.
    """

    def __init__(self, delay=0.0, drop_every=0, throttle_every=0, lose_reply_every=0, lenient=False,
                 close_after_message=False, port=0):
        self.delay, self.drop_every, self.throttle_every = delay, drop_every, throttle_every
        self.lenient = lenient
        self.close_after_message = close_after_message
        self.connections = 0
        self.verbs = {}
        self.lose_reply_every = lose_reply_every
        self.lock = threading.Lock()
        self.received = []  # (rcpts, data)
        self.transactions = 0
        self.mails = 0
        self.faults = {"dropped": 0, "throttled": 0, "lost_reply": 0}
        self.attempts = {}  # X-Test-Id -> [monotonic time of each DATA]
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    sink._session(self.rfile, self.wfile, self.connection)
                except OSError:
                    pass  # the relay was killed or cut the connection: part of the test

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self):
        with self.lock:
            return len(self.received)

    def ids(self):
        """X-Test-Id of every received message, with repeats."""
        with self.lock:
            out = []
            for _, data in self.received:
                m = re.search(rb"X-Test-Id: (\S+)", data)
                out.append(m.group(1).decode() if m else None)
            return out

    def _session(self, rfile, wfile, conn):
        def say(line):
            wfile.write(line.encode() + b"\r\n")
            wfile.flush()

        say("220 sink.test ESMTP")
        with self.lock:
            self.connections += 1
        rcpts = []
        in_mail = False
        while True:
            line = rfile.readline(1 << 20)
            if not line:
                return
            verb = line[:4].upper()
            with self.lock:
                self.verbs[verb.decode(errors="replace")] = self.verbs.get(verb.decode(errors="replace"), 0) + 1
            if verb in (b"EHLO", b"HELO"):
                wfile.write(b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 2000000000\r\n")
                wfile.flush()
            elif verb == b"MAIL":
                with self.lock:
                    self.mails += 1
                    throttle = self.throttle_every and self.mails % self.throttle_every == 0
                    if throttle:
                        self.faults["throttled"] += 1
                if throttle:
                    say("454 4.7.0 Throttling failure: Maximum sending rate exceeded.")
                else:
                    rcpts, in_mail = [], True
                    say("250 2.1.0 Ok")
            elif verb == b"RCPT":
                if not in_mail and not self.lenient:
                    say("503 5.5.1 Error: need MAIL command")
                    continue
                rcpts.append(line[8:].strip().decode(errors="replace"))
                say("250 2.1.5 Ok")
            elif verb == b"DATA" and not rcpts:
                # A lenient pipelining server (the RFC 2920 case): the client must send an empty message.
                say("354 End data with <CR><LF>.<CR><LF>")
                while rfile.readline(1 << 20) not in (b".\r\n", b""):
                    pass
                say("554 5.5.1 Error: no valid recipients")
            elif verb == b"DATA":
                with self.lock:
                    self.transactions += 1
                    n = self.transactions
                drop = self.drop_every and n % self.drop_every == 0
                lose = self.lose_reply_every and n % self.lose_reply_every == 0
                say("354 End data with <CR><LF>.<CR><LF>")
                data = bytearray()
                lines = 0
                while True:
                    l = rfile.readline(1 << 20)
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    data += l[1:] if l.startswith(b"..") else l
                    lines += 1
                    if drop and lines == 3:
                        with self.lock:
                            self.faults["dropped"] += 1
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                if not data:  # the empty message a client sends to close a void transaction
                    say("554 5.5.1 Error: no valid transaction")
                    rcpts, in_mail = [], False
                    continue
                m = re.search(rb"X-Test-Id: (\S+)", bytes(data))
                with self.lock:
                    if m:
                        self.attempts.setdefault(m.group(1).decode(), []).append(time.monotonic())
                if lose:  # the upstream has the message; the client never hears so
                    with self.lock:
                        self.faults["lost_reply"] += 1
                        self.received.append((list(rcpts), bytes(data)))
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if self.delay:
                    time.sleep(self.delay)
                with self.lock:
                    self.received.append((list(rcpts), bytes(data)))
                say("250 2.0.0 Ok: queued")
                rcpts, in_mail = [], False
                if self.close_after_message:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
            elif verb == b"RSET":
                rcpts, in_mail = [], False
                say("250 2.0.0 Ok")
            elif verb == b"NOOP":
                say("250 2.0.0 Ok")
            elif verb == b"QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 Error: command not recognized")
