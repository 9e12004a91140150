"""Fault injection: the spool on a real ext4 (a loop device) that fills up.

Two ways a real disk runs out, both on ext4 with its default delayed allocation:

1. The ext4 itself is full. ext4 reserves the blocks of a delayed allocation at
   write() time (and stops delaying when nearly full), so write() fails with
   ENOSPC: the relay answers 452 4.3.1.
2. The storage under ext4 is full (thin provisioning: the loop device's image
   is a sparse file on a small tmpfs). ext4 believes it has room, write() only
   fills the page cache and succeeds, and the failure comes at fsync, when the
   delayed allocation is written back: EIO, the journal aborts, ext4 turns
   read-only. The relay must answer 4xx, never 250, for that message.

In both, after the space is back (case 2: a bigger tmpfs, e2fsck, mount again)
every message acknowledged with 250 is delivered whole. Needs root (mount,
losetup); fails loudly without.
"""

import os
import smtplib
import subprocess
import unittest

from faults import Sink, message, report
from relay import Relay, free_port, wait_until
from test_fault_disk import send_big as send_big_raising


def send_big(port, test_id):
    """(code, text); a refusal at DATA (the spool cannot even create the file) included."""
    try:
        return send_big_raising(port, test_id)
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")


def run(*argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}); this test needs root and loop devices: "
                             f"{r.stderr.strip()}")
    return r.stdout.strip()


class Ext4Test(unittest.TestCase):
    def setUp(self):
        self.relay = Relay(upstream={"kind": "smtp", "host": "127.0.0.1", "port": free_port(), "tls": "none"},
                           spool={"retry_min_seconds": 1, "retry_max_seconds": 1}, log={"level": "info"})
        self.mountpoint = os.path.join(self.relay.dir, "ext4")
        self.relay.spool["path"] = os.path.join(self.mountpoint, "spool")
        self.relay.write_config()
        os.makedirs(self.mountpoint)
        self.addCleanup(self.relay.stop)

    def make_ext4(self, image, size):
        run("truncate", "-s", size, image)
        run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", image)  # nodiscard: the image stays sparse
        loop = run("losetup", "--find", "--show", image)
        self.addCleanup(subprocess.run, ["losetup", "-d", loop], capture_output=True)
        self.mount(loop)
        return loop

    def mount(self, device):
        run("mount", "-t", "ext4", device, self.mountpoint)
        self.addCleanup(subprocess.run, ["umount", "-l", self.mountpoint], capture_output=True)

    def fill(self, prefix):
        """Sends 100 KB messages until the relay refuses one; returns (acked ids, first refusal)."""
        relay = self.relay.start()
        acked = []
        for n in range(2000):
            code, text = send_big(relay.port, f"{prefix}{n}")
            if code != 250:
                refusal = (code, text)
                break
            acked.append(f"{prefix}{n}")
        else:
            self.fail("the disk never filled up")
        self.assertIn(refusal[0], (451, 452), refusal[1])
        for n in range(3):  # still refused, and the relay still answers
            code, text = send_big(relay.port, f"again{prefix}{n}")
            self.assertIn(code, (421, 451, 452), text)
        return acked, refusal

    def deliver(self, acked):
        """The upstream returns: every acknowledged message arrives whole."""
        with Sink() as sink:
            self.relay.upstream["port"] = sink.port
            self.relay.write_config()
            self.relay.start()
            wait_until(lambda: self.relay.spool_ids() == [], timeout=120, what="the spool to drain")
            self.assertEqual(self.relay.stop(), 0)
            got = sink.ids()
            for test_id, (_, data) in zip(got, sink.received):
                self.assertTrue(data.endswith(message(test_id, 100 * 1024).split(b"\r\n\r\n", 1)[1]),
                                f"{test_id} arrived half-written")
        lost = set(acked) - set(got)
        self.assertEqual(lost, set(), "acknowledged with 250 but not delivered")
        return got

    def test_full_ext4_fails_at_write_452(self):
        self.make_ext4(os.path.join(self.relay.dir, "ext4.img"), "8M")
        acked, refusal = self.fill("w")
        self.assertEqual(refusal[0], 452, refusal[1])
        self.assertIn("No space left on device", self.relay.read_log())
        self.assertEqual(os.listdir(os.path.join(self.relay.spool_dir, "incoming")), [])
        self.assertEqual(self.relay.stop(), 0)
        got = self.deliver(acked)
        report(f"full ext4 (8 MB loop device): {len(acked)} x 100 KB acknowledged, then '{refusal[0]} "
               f"{refusal[1][:40]}' (ENOSPC at write); after the upstream returned {len(set(got))} delivered, "
               f"0 lost")

    def test_thin_storage_fails_at_fsync_never_250(self):
        backing = os.path.join(self.relay.dir, "backing")
        os.makedirs(backing)
        run("mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", backing)
        self.addCleanup(subprocess.run, ["umount", "-l", backing], capture_output=True)
        image = os.path.join(backing, "ext4.img")
        loop = self.make_ext4(image, "64M")
        acked, refusal = self.fill("t")
        log = self.relay.read_log()
        # fsync of a queue file, fdatasync of a segment (the default spool)
        self.assertRegex(log, r"f(data)?sync[^\n]*Input/output error",
                         "the failure must come at fsync (write() succeeded into the page cache)")
        self.relay.stop()  # ext4 is read-only now; the exit code does not matter here

        # Space comes back: a bigger backing store, e2fsck, mount again.
        run("umount", self.mountpoint)
        run("mount", "-o", "remount,size=128M", backing)
        fsck = subprocess.run(["e2fsck", "-f", "-y", loop], capture_output=True, text=True)
        self.assertLess(fsck.returncode, 4, f"e2fsck could not repair the file system: {fsck.stdout}")
        self.mount(loop)
        corrupt_dir = os.path.join(self.relay.spool_dir, "corrupt")
        got = self.deliver(acked)
        corrupt = os.listdir(corrupt_dir) if os.path.isdir(corrupt_dir) else []
        report(f"thin ext4 (64 MB ext4 on a 4 MB tmpfs): {len(acked)} x 100 KB acknowledged, then "
               f"'{refusal[0]} {refusal[1][:40]}' (write() succeeded, fsync failed with EIO, ext4 went "
               f"read-only); after more space and e2fsck: {len(set(acked) & set(got))} of {len(acked)} "
               f"delivered whole, 0 lost, {len(set(got) - set(acked))} delivered whose client got a 4xx, "
               f"{len(corrupt)} file(s) in corrupt/")


if __name__ == "__main__":
    unittest.main()
