"""The upstream in the container test's pod (test_container_pod.py), run in
its own container: an SMTP server on aiosmtpd that requires AUTH with the
credentials in SINK_USER and SINK_PASSWORD (what the relay must have read from
the manifest's Secret), writes each accepted copy to SINK_DIR/NNNN.eml, and
answers 451 for recipients at defer.example (mail that must stay queued).
On SIGTERM it is gone at once: an upstream that is unreachable while the relay
drains. It writes SINK_DIR/ready once it accepts connections.
"""

import itertools
import os
import signal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

OUT = os.environ["SINK_DIR"]


class Handler:
    def __init__(self):
        self.counter = itertools.count(len([f for f in os.listdir(OUT) if f.endswith(".eml")]) + 1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@defer.example"):
            return "451 4.3.0 deferred by the test sink"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        path = os.path.join(OUT, f"{n:04d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(b"X-Sink-Rcpt: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n" + envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == os.environ["SINK_USER"]
          and auth_data.password.decode() == os.environ["SINK_PASSWORD"])
    return AuthResult(success=ok, handled=False)


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(os.environ["SINK_PORT"]),
                            authenticator=authenticate, auth_required=True, auth_require_tls=False)
    controller.start()
    with open(os.path.join(OUT, "ready.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.rename(os.path.join(OUT, "ready.tmp"), os.path.join(OUT, "ready"))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
