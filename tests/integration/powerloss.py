"""Harness for power-loss tests: mounts powerfs.py and cuts its power.

    with PowerDisk(directory) as disk:   # mounts directory/disk
        ... programs write under disk.path ...
        disk.cut()                       # from now on every operation fails with EIO
        kill the programs using it
        disk.power_on()                  # what was not synced is gone

PowerDisk(directory, "random", seed) keeps a random part of what was not
synced instead (powerfs.py, model random); the_seed() picks the seed, or takes
it from POWERLOSS_SEED to replay a failed run's choices, and prints it.

Needs root and /dev/fuse; fails loudly (never skips) when either is missing.
"""

import ctypes
import json
import os
import random
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's, the one python3-pyfuse3 is installed for


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def the_seed(what):
    """A test's seed: POWERLOSS_SEED when set (a replay), else a new one; printed
    either way, so that a failure can be replayed with the same choices."""
    forced = os.environ.get("POWERLOSS_SEED")
    seed = int(forced) if forced else random.randrange(1 << 30)
    print(f"\n{what}: seed {seed} (POWERLOSS_SEED={seed} replays it)", flush=True)
    return seed


class PowerDisk:
    def __init__(self, directory, model="drop", seed=0):
        self.path = os.path.join(directory, "disk")
        self.control_path = os.path.join(directory, "powerfs.sock")
        self.log_path = os.path.join(directory, "powerfs.log")
        self.model, self.seed = model, seed
        self.proc = None

    def __enter__(self):
        if not os.path.exists("/dev/fuse"):
            raise AssertionError("the power-loss tests need /dev/fuse (FUSE); it is missing")
        os.makedirs(self.path, exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PYTHON, os.path.join(HERE, "powerfs.py"), self.path, self.control_path,
                                      "--model", self.model, "--seed", str(self.seed)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (mounted(self.path) and os.path.exists(self.control_path)):
            if self.proc.poll() is not None:
                raise AssertionError(f"powerfs did not mount (root and fuse3 needed): {self.read_log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"powerfs did not mount within 60 s: {self.read_log()}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def command(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.control_path)
            s.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError(f"powerfs closed the control socket: {self.read_log()}")
                answer += chunk
        answer = answer.decode().strip()
        if answer.startswith("error"):
            raise AssertionError(f"powerfs: {line}: {answer}")
        return answer

    def arm(self, operations):
        """Cut the power after this many more file-system operations."""
        self.command(f"arm {operations}")

    def read_errors(self, on):
        """Every read() fails with EIO while on (a failing disk), nothing else changes."""
        self.command("readerr " + ("on" if on else "off"))

    def cut(self):
        self.command("cut")

    def dead(self):
        return self.command("state") == "dead"

    def stats(self):
        return json.loads(self.command("stats"))

    def power_on(self):
        """After the programs using the disk are gone: flush what the kernel still holds
        (it is refused: the power is off), then serve what survived."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            ctypes.CDLL(None, use_errno=True).syncfs(fd)
        finally:
            os.close(fd)
        self.command("on")
