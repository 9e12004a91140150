"""The legacy application in the container test's pod (test_container_pod.py).

`python3 pod_sender.py idle` is the container's process: it waits and exits 0
on SIGTERM. `python3 pod_sender.py send CAMPAIGN RCPT...`, run with podman
exec, mails one campaign message with smtplib to $SMTP_HOST:$SMTP_PORT (the
manifest's localhost:2525: the relay beside it) and prints the queue id.
"""

import os
import signal
import smtplib
import sys


def send(campaign, recipients):
    message = (f"From: News <news@example.com>\r\nTo: undisclosed-recipients:;\r\n"
               f"Subject: {campaign}\r\nX-Campaign-Id: {campaign}\r\nX-Launch-List-Id: 7\r\n"
               f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
               f"The {campaign} news.\r\nLeave: *|UNSUBSCRIBE|*\r\n")
    with smtplib.SMTP(os.environ["SMTP_HOST"], int(os.environ["SMTP_PORT"]), timeout=30) as s:
        s.ehlo("legacy-app")
        s.mail("news@example.com")
        for r in recipients:
            code, text = s.rcpt(r)
            if code != 250:
                sys.exit(f"RCPT {r}: {code} {text.decode()}")
        code, text = s.data(message.encode())
        if code != 250:
            sys.exit(f"DATA: {code} {text.decode()}")
        print(text.decode().rsplit(" ", 1)[-1])


def main():
    if sys.argv[1:2] == ["idle"]:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            signal.pause()
    if sys.argv[1:2] == ["send"] and len(sys.argv) > 3:
        return send(sys.argv[2], sys.argv[3:])
    sys.exit("usage: pod_sender.py idle | send CAMPAIGN RCPT...")


if __name__ == "__main__":
    main()
