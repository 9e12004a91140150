"""The Debian package under a real systemd (issue 15, parts 1 and 2).

A Debian 12 root made by debootstrap (scripts/debian-root.sh, cached) boots
under systemd-nspawn with systemd as PID 1. The package from
./scripts/build-deb.sh is installed with apt and the service is driven with
systemctl: start reaches active only after READY=1, swaks's mail is delivered
by the directory upstream, reload re-reads the configuration, stop drains,
the journal has the Postfix-style lines, `systemd-analyze security` scores
what docs/systemd.md says; then upgrade, remove and purge behave as
docs/operations.md says. Needs root (systemd-nspawn).
"""

import glob
import os
import re
import smtplib
import socket
import subprocess
import unittest

from container import Container, debian_root, package
from relay import REPO, wait_until

CONF = "/etc/unsubrelay/unsubrelay.yaml"
STATE = "/var/lib/unsubrelay"
UNIT = "unsubrelay.service"


def claimed_security_score():
    with open(os.path.join(REPO, "docs", "systemd.md")) as f:
        m = re.search(r"systemd-analyze security unsubrelay`[^\n]*?scores `(\d+\.\d+)", f.read())
    if not m:
        raise AssertionError("docs/systemd.md states no `systemd-analyze security unsubrelay` score")
    return m.group(1)


def smtp_banner(container, port=2525):
    """The greeting, read at once: no retry (READY=1 must mean listening)."""
    with container.netns():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return s.recv(512).decode()
    finally:
        s.close()


def tree_listing(root):
    """Every path under root with its type, mode, owner, size and mtime."""
    r = subprocess.run(["find", root, "-printf", "%P %y %m %U %s %T@ %l\\n"], capture_output=True, check=True)
    return r.stdout


_cached_root = {}


def setUpModule():
    if os.geteuid() == 0:  # else each test says it needs root
        _cached_root["path"] = debian_root()
        _cached_root["listing"] = tree_listing(_cached_root["path"])


def tearDownModule():
    # Containers and chroots wrote to overlays only: the cached root is as it was.
    if _cached_root and tree_listing(_cached_root["path"]) != _cached_root["listing"]:
        raise AssertionError(f"the cached root {_cached_root['path']} changed during the test")


class SystemdBootTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("systemd-nspawn needs root: run ./scripts/test.sh as root")
        cls.deb = package()
        cls.container = Container(debian_root())
        try:
            cls.container.prepare_package(cls.deb)
            cls.container.boot()
        except BaseException:
            cls.container.stop()  # tearDownClass does not run after a failed setUpClass
            raise

    @classmethod
    def tearDownClass(cls):
        cls.container.stop()

    def c(self, *argv, **kw):
        return self.container.run(*argv, **kw)

    def queue_list(self):
        """`unsubrelay queue list` as the service's user: queue files and segments."""
        r = self.c("runuser", "-u", "unsubrelay", "--", "unsubrelay", "queue", "list", "-c", CONF)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def on_disk(self, queue_id):
        """The message's bytes in the state directory (no binary to ask): a queue file or a segment record."""
        if os.path.exists(self.container.path(f"{STATE}/spool/messages/{queue_id}")):
            return True
        d = self.container.path(f"{STATE}/spool/segments")
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                if queue_id.encode() in f.read():
                    return True
        return False

    def swaks(self, to, *extra):
        r = self.container.host_in_netns("swaks", "--server", "127.0.0.1:2525", "--from", "sender@example.com",
                                         "--to", to, *extra)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return re.search(r"^<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$", r.stdout, re.M).group(1)

    def outbox(self):
        return sorted(glob.glob(self.container.path(f"{STATE}/outbox/*.eml")))

    def set_config(self, old, new):
        path = self.container.path(CONF)
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(path, "w") as f:
            f.write(text.replace(old, new))

    # The steps share one booted container and run in this order.
    def test_1_install(self):
        r = self.c("apt-get", "install", "-y", f"/root/{os.path.basename(self.deb)}")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertEqual(self.show("ActiveState"), "active")  # postinst enabled and started it
        self.assertEqual(self.c("systemctl", "is-enabled", UNIT).stdout.strip(), "enabled")
        for f in ("/usr/bin/unsubrelay", "/lib/systemd/system/unsubrelay.service", CONF,
                  "/usr/share/man/man8/unsubrelay.8.gz", "/usr/share/doc/unsubrelay/copyright",
                  "/usr/share/doc/unsubrelay/changelog.gz", "/usr/share/doc/unsubrelay/operations.md.gz"):
            self.assertTrue(os.path.exists(self.container.path(f)), f)
        conffiles = self.c("dpkg-query", "-W", "-f=${Conffiles}", "unsubrelay", check=True).stdout
        self.assertIn(CONF, conffiles)
        user = self.c("getent", "passwd", "unsubrelay", check=True).stdout.strip().split(":")
        self.assertLess(int(user[2]), 1000)  # a system user
        self.assertEqual((user[5], user[6]), (STATE, "/usr/sbin/nologin"))
        st = os.stat(self.container.path(STATE))
        self.assertEqual(oct(st.st_mode & 0o777), "0o700")
        self.assertEqual(str(st.st_uid), user[2])
        keys = os.stat(self.container.path(f"{STATE}/keys.yaml"))
        self.assertEqual((oct(keys.st_mode & 0o777), str(keys.st_uid)), ("0o600", user[2]))
        self.assertEqual(self.show("User"), "unsubrelay")

    def show(self, prop):
        return self.container.show(UNIT, prop)

    def test_2_start_is_active_only_after_ready(self):
        self.c("systemctl", "stop", UNIT, check=True)
        self.assertEqual((self.show("Type"), self.show("NotifyAccess")), ("notify", "main"))
        self.c("systemctl", "reset-failed", UNIT)  # the tests restart faster than StartLimitBurst allows
        self.c("systemctl", "start", UNIT, check=True)
        # systemctl start returned: the unit is active and the relay accepts now.
        self.assertEqual(self.show("ActiveState"), "active")
        self.assertTrue(smtp_banner(self.container).startswith("220 "))
        self.assertIn("unsubrelay ready", self.container.journal(UNIT))

        # A relay that cannot get ready (its HTTP port is taken) never becomes active,
        # although its process started and its SMTP listener opened.
        self.c("systemctl", "stop", UNIT, check=True)
        with self.container.netns():
            blocker = socket.socket()
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", 8080))
            blocker.listen()
        try:
            r = self.c("systemctl", "restart", UNIT)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(self.show("ActiveState"), ("failed", "activating"))
            self.assertEqual(self.show("ExecMainStatus"), "71")
        finally:
            blocker.close()
        # Restart=on-failure brings it back once the port is free.
        wait_until(lambda: self.show("ActiveState") == "active", timeout=30, what="the relay back after the port freed")

    def test_3_mail_is_delivered_and_journalled(self):
        before = len(self.outbox())
        queue_id = self.swaks("reader@example.org")
        wait_until(lambda: len(self.outbox()) == before + 1, what="the copy in the outbox")
        campaign = self.swaks("fan@example.org", "--header", "X-Campaign-Id: spring", "--header",
                              "X-Launch-List-Id: 42", "--body", "Leave: *|UNSUBSCRIBE|*")
        copy = wait_until(lambda: glob.glob(self.container.path(f"{STATE}/outbox/{campaign}.*.eml")),
                          what="the campaign copy")[0]
        with open(copy) as f:
            link = re.search(r"List-Unsubscribe: <(http://127\.0\.0\.1:8080/u/[A-Za-z0-9_-]+)>", f.read()).group(1)
        # The key set the package generated signs the link; the CLI, run as the service's user, verifies it.
        v = self.c("runuser", "-u", "unsubrelay", "--", "unsubrelay", "token", "verify", "-c", CONF, link)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("spring", v.stdout)
        journal = self.container.journal(UNIT)
        self.assertRegex(journal, rf"{queue_id}: client=\[127\.0\.0\.1\]:\d+, helo=\S+, from=<sender@example\.com>, "
                                  r"size=\d+, nrcpt=1")
        self.assertRegex(journal, rf"{queue_id}: to=<reader@example\.org>, relay=directory, delay=\S+, status=sent \(250")
        self.assertIn(f"{queue_id}: removed", journal)
        # The journal has the time: the relay writes none of its own there (Postfix's lines, as syslog shows them).
        self.assertRegex(journal, rf"(?m)^{queue_id}: to=<reader@example\.org>")

    def test_4_reload_rereads_the_configuration(self):
        # At log level warn, a delivery writes no info line ...
        self.set_config("log: { level: info", "log: { level: warn")
        self.c("systemctl", "reset-failed", UNIT)  # the tests restart faster than StartLimitBurst allows
        self.c("systemctl", "restart", UNIT, check=True)
        quiet = self.swaks("quiet@example.org")
        wait_until(lambda: glob.glob(self.container.path(f"{STATE}/outbox/{quiet}.*.eml")), what="quiet copy")
        self.assertNotIn(f"{quiet}: to=<", self.container.journal(UNIT))
        pid = self.show("MainPID")
        # ... reload with level info: the same process now logs deliveries.
        cursor = self.container.journal_cursor()
        self.set_config("log: { level: warn", "log: { level: info")
        self.c("systemctl", "reload", UNIT, check=True)
        wait_until(lambda: "reloaded" in self.container.journal(UNIT, cursor), what="the reload in the journal")
        loud = self.swaks("loud@example.org")
        wait_until(lambda: f"{loud}: to=<loud@example.org>" in self.container.journal(UNIT, cursor),
                   what="the delivery line after reload")
        self.assertEqual(self.show("MainPID"), pid)
        # A broken file is refused and the running configuration stays.
        cursor = self.container.journal_cursor()
        self.set_config("log: { level: info", "no_such_key: 1\nlog: { level: info")
        self.c("systemctl", "reload", UNIT, check=True)
        wait_until(lambda: "reload refused" in self.container.journal(UNIT, cursor), what="the refused reload")
        self.assertEqual((self.show("ActiveState"), self.show("MainPID")), ("active", pid))
        # Errors carry their priority: `journalctl -p err` shows them and no delivery line.
        errors = self.c("journalctl", "-u", UNIT, "-p", "err", "-o", "cat", "--no-pager", check=True).stdout
        self.assertIn("error: reload refused: the running configuration stays in force", errors)
        self.assertIn("no_such_key", errors)
        self.assertNotIn("status=sent", errors)
        self.set_config("no_such_key: 1\n", "")

    def test_5_security_score_is_what_the_docs_claim(self):
        r = self.c("systemd-analyze", "security", UNIT, "--no-pager")
        score = re.search(r"Overall exposure level for unsubrelay\.service: (\d+\.\d+) (\w+)", r.stdout)
        self.assertIsNotNone(score, r.stdout[-2000:] + r.stderr)
        self.assertEqual(score.group(1), claimed_security_score(), r.stdout)

    def test_6_stop_drains(self):
        cursor = self.container.journal_cursor()
        with self.container.netns():
            s = smtplib.SMTP("127.0.0.1", 2525, timeout=30)
        s.ehlo("drain.test")
        s.mail("sender@example.com")
        s.rcpt("late@example.org")
        self.assertEqual(s.docmd("DATA")[0], 354)
        s.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        self.c("systemctl", "stop", "--no-block", UNIT, check=True)
        # The relay's own word that it drains for our message, then the unit still stopping:
        # the 250 that follows proves the relay waited for the message's end.
        wait_until(lambda: "signal 15: draining (1 connection(s) open)" in self.container.journal(UNIT, cursor),
                   what="the relay to begin draining")
        self.assertEqual(self.show("ActiveState"), "deactivating")  # waiting for the message in DATA
        s.send(b"second half\r\n.\r\n")
        code, text = s.getreply()
        self.assertEqual(code, 250, text)
        s.close()
        wait_until(lambda: self.show("ActiveState") == "inactive", what="the drained stop")
        self.assertEqual((self.show("Result"), self.show("ExecMainStatus")), ("success", "0"))
        journal = self.container.journal(UNIT, cursor)
        self.assertRegex(journal, r"to=<late@example\.org>, relay=directory, .*status=sent")
        self.assertRegex(journal, r"stopped: \d+ message\(s\) received, \d+ delivered")

    def test_7_upgrade_keeps_the_edited_conffile_and_the_keys(self):
        self.c("systemctl", "reset-failed", UNIT)  # the tests restart faster than StartLimitBurst allows
        self.c("systemctl", "start", UNIT, check=True)
        self.set_config("hostname: relay.example.com", "hostname: relay.upgrade.test")
        with open(self.container.path(f"{STATE}/keys.yaml")) as f:
            keys = f.read()
        pid = self.show("MainPID")
        newer = self.container.repack_version(self.deb, "0.1.0+upgradetest1")
        r = self.c("apt-get", "install", "-y", newer)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertEqual(self.c("dpkg-query", "-W", "-f=${Version}", "unsubrelay").stdout, "0.1.0+upgradetest1")
        with open(self.container.path(CONF)) as f:
            self.assertIn("hostname: relay.upgrade.test", f.read())
        self.assertFalse(os.path.exists(self.container.path(CONF + ".dpkg-new")))
        with open(self.container.path(f"{STATE}/keys.yaml")) as f:
            self.assertEqual(f.read(), keys)
        self.assertEqual(self.show("ActiveState"), "active")
        self.assertNotEqual(self.show("MainPID"), pid)  # restarted on the new binary

    def test_8_remove_keeps_config_and_state_purge_keeps_undelivered_mail(self):
        # Mail the upstream cannot take stays queued (nothing listens on port 9).
        self.set_config("  kind: directory", "  kind: smtp\n  host: 127.0.0.1\n  port: 9\n  tls: none")
        self.c("systemctl", "reset-failed", UNIT)  # the tests restart faster than StartLimitBurst allows
        self.c("systemctl", "restart", UNIT, check=True)
        stuck = self.swaks("stuck@example.org")
        wait_until(lambda: "status=deferred" in self.container.journal(UNIT), what="the deferral")
        self.assertIn(stuck, self.queue_list())

        r = self.c("apt-get", "remove", "-y", "unsubrelay")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertEqual(self.c("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "unsubrelay").stdout.strip(), "rc")
        self.assertFalse(os.path.exists(self.container.path("/usr/bin/unsubrelay")))
        self.assertNotEqual(self.show("ActiveState"), "active")
        for kept in (CONF, f"{STATE}/keys.yaml", f"{STATE}/unsubrelay.db"):
            self.assertTrue(os.path.exists(self.container.path(kept)), kept)
        self.assertTrue(self.on_disk(stuck))

        r = self.c("apt-get", "purge", "-y", "unsubrelay")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        # postrm counts queue files and the messages live in segments (the default spool) alike.
        self.assertIn(f"unsubrelay: 1 undelivered message(s) in {STATE}/spool: {STATE} is kept.",
                      r.stdout + r.stderr)
        self.assertFalse(os.path.exists(self.container.path("/etc/unsubrelay")))
        self.assertTrue(self.on_disk(stuck))

        # Reinstalled (a fresh configuration: the directory upstream), the relay delivers it
        # at its next retry, or now after a flush.
        r = self.c("apt-get", "install", "-y", f"/root/{os.path.basename(self.deb)}")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.c("runuser", "-u", "unsubrelay", "--", "unsubrelay", "queue", "flush", "-c", CONF, check=True)
        wait_until(lambda: glob.glob(self.container.path(f"{STATE}/outbox/{stuck}.*.eml")),
                   what="the kept message delivered after reinstall")

    def test_9_purge_removes_config_and_state(self):
        wait_until(lambda: "Mail queue is empty" in self.queue_list(), what="an empty spool")
        r = self.c("apt-get", "purge", "-y", "unsubrelay")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertEqual(self.c("dpkg-query", "-W", "unsubrelay").returncode, 1)  # not even config-files
        for gone in ("/etc/unsubrelay", STATE, "/lib/systemd/system/unsubrelay.service", "/usr/share/doc/unsubrelay"):
            self.assertFalse(os.path.exists(self.container.path(gone)), gone)
        self.assertEqual(self.c("getent", "passwd", "unsubrelay").returncode, 0)  # system users stay (Debian practice)
        self.assertEqual(self.c("systemctl", "is-enabled", UNIT).stdout.strip(), "")


class QuickStartPackagesTest(unittest.TestCase):
    """scripts/deps/run.txt on a fresh Debian 12: what the quick start installs."""

    def test_quick_start_pulls_no_test_tool(self):
        if os.geteuid() != 0:
            raise AssertionError("chroot needs root: run ./scripts/test.sh as root")
        with open(os.path.join(REPO, "scripts", "deps", "run.txt")) as f:
            wanted = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
        # Simulated against the cached root, through an overlay (apt logs its plan even when simulating).
        root = Container(debian_root())
        self.addCleanup(root.stop)
        root.mount()
        r = subprocess.run(["chroot", root.root, "apt-get", "install", "--simulate", "--no-install-recommends",
                            *wanted], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        pulled = set(re.findall(r"^Inst (\S+)", r.stdout, re.M))
        self.assertTrue({"g++", "cmake", "libboost-dev", "libpqxx-dev"} <= pulled, sorted(pulled))
        for tool in ("chromium", "chromium-driver", "postgresql", "postgresql-15", "clang-14", "swaks",
                     "libgtest-dev", "libmimetic-dev", "python3-aiosmtpd", "debootstrap", "prometheus", "lintian"):
            self.assertNotIn(tool, pulled)

    def test_package_build_depends_are_in_the_quick_start_list(self):
        with open(os.path.join(REPO, "scripts", "deps", "run.txt")) as f:
            run = {line.split()[0] for line in f if line.strip() and not line.startswith("#")}
        with open(os.path.join(REPO, "debian", "control")) as f:
            control = f.read()
        field = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S).group(1)
        needed = {re.sub(r"\s*\(.*", "", d).strip() for d in field.split(",") if d.strip()}
        self.assertEqual(needed - run, {"debhelper-compat (= 13)".split()[0]})


if __name__ == "__main__":
    unittest.main()
