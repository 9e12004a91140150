#!/usr/bin/env python3
"""An SMTP sink that answers the end of DATA after a delay (bench/slow_upstream.py).

SES over the internet takes 50-150 ms per message; this sink models it on
loopback: every reply is immediate except the one to the final dot, which
comes --delay-ms later (without blocking the other connections). PIPELINING
and 8BITMIME are offered. It counts transactions and recipients and writes
"messages N recipients M at T" to --stats every 100 ms (T: time.monotonic(),
the system's CLOCK_MONOTONIC, comparable with other processes' readings).
With --mark ADDRESS, the moment the end of DATA of a transaction to ADDRESS
arrives is written to --mark-file (bench/tenant_fairness.py).

  python3 bench/slow_sink.py --port 2525 --delay-ms 60 --stats /tmp/sink.stats
"""

import argparse
import asyncio
import os
import signal
import time

STATS = {"messages": 0, "recipients": 0}
MARK = {"address": None, "file": None}


class Session(asyncio.Protocol):
    def __init__(self, delay):
        self.delay = delay
        self.buf = b""
        self.in_data = False
        self.rcpts = 0
        self.marked = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data):
        self.buf += data
        while True:
            if self.in_data:
                end = self.buf.find(b"\r\n.\r\n")
                if end < 0:
                    # keep only what could be the start of the terminator
                    if len(self.buf) > 4:
                        self.buf = self.buf[-4:]
                    return
                self.buf = self.buf[end + 5:]
                self.in_data = False
                STATS["messages"] += 1
                STATS["recipients"] += self.rcpts
                self.rcpts = 0
                if self.marked:
                    self.marked = False
                    with open(MARK["file"], "a") as f:
                        f.write(f"{time.monotonic():.6f}\n")
                asyncio.get_running_loop().call_later(self.delay, self._reply, b"250 2.0.0 queued\r\n")
                continue
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                return
            line, self.buf = self.buf[:nl], self.buf[nl + 2:]
            self.command(line)

    def _reply(self, text):
        if not self.transport.is_closing():
            self.transport.write(text)

    def command(self, line):
        verb = line[:4].upper()
        if verb == b"EHLO":
            self.transport.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n")
        elif verb == b"HELO":
            self.transport.write(b"250 sink\r\n")
        elif verb == b"MAIL":
            self.rcpts = 0
            self.marked = False
            self.transport.write(b"250 2.1.0 ok\r\n")
        elif verb == b"RCPT":
            self.rcpts += 1
            if MARK["address"] and MARK["address"] in line.lower():
                self.marked = True
            self.transport.write(b"250 2.1.5 ok\r\n")
        elif verb == b"DATA":
            self.in_data = True
            # a terminator right after the 354 (an empty message) starts with CRLF
            self.buf = b"\r\n" + self.buf
            self.transport.write(b"354 go\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        else:  # RSET, NOOP
            self.transport.write(b"250 ok\r\n")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=60)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--mark", help="an address whose transactions' arrival times are written to --mark-file")
    ap.add_argument("--mark-file")
    args = ap.parse_args()
    if args.mark:
        MARK["address"], MARK["file"] = args.mark.lower().encode(), args.mark_file
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Session(args.delay_ms / 1000), "127.0.0.1", args.port, backlog=1024)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def write_stats():
        while True:
            tmp = args.stats + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"messages {STATS['messages']} recipients {STATS['recipients']} at {time.monotonic():.6f}\n")
            os.replace(tmp, args.stats)
            await asyncio.sleep(0.1)

    writer = asyncio.ensure_future(write_stats())
    await stop.wait()
    writer.cancel()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
