"""Command line, configuration errors, signals and systemd notification."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from relay import BIN, RawClient, Relay, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

BAD_CONFIG = """\
smtp:
  listen: ["127.0.0.1:2525", "localhost"]
  max_recipients: many
  allow_networks: ["10.0.0.0/8", "300.1.2.3/8", "::1/129"]
  colour: blue
  tls: { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }
upstream:
  kind: pigeon
spool:
  path: var/spool
  max_age_hours: -3
loggin: { level: info }
"""


def run_cli(*args, cwd=None, timeout=30):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


class CheckConfigTest(unittest.TestCase):
    def test_shipped_reference_configuration_is_valid(self):
        result = run_cli("check-config", "-c", os.path.join(REPO, "conf", "unsubrelay.yaml"), cwd=REPO)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration OK", result.stdout)

    def test_every_error_is_reported_with_path_and_line(self):
        path = os.path.join(tempfile.mkdtemp(), "bad.yaml")
        with open(path, "w") as f:
            f.write(BAD_CONFIG)
        result = run_cli("check-config", "-c", path)
        self.assertNotEqual(result.returncode, 0)
        err = result.stderr
        expected = [
            f"{path}:2: smtp.listen[1]: 'localhost' is not host:port",
            f"{path}:3: smtp.max_recipients: must be a whole number",
            f"{path}:4: smtp.allow_networks[1]: '300.1.2.3/8' is not a CIDR network",
            f"{path}:4: smtp.allow_networks[2]: '::1/129' is not a CIDR network",
            f"{path}:5: smtp.colour: unknown key",
            f"{path}:6: smtp.tls.cert: cannot read file '/nonexistent/cert.pem'",
            f"{path}:6: smtp.tls.key: cannot read file '/nonexistent/key.pem'",
            f"{path}:8: upstream.kind: must be one of: smtp | ses | directory",
            f"{path}:11: spool.max_age_hours: must be a whole number",
            f"{path}:12: loggin: unknown key",
        ]
        for line in expected:
            self.assertIn(line, err)
        self.assertIn("10 error(s)", err)

    def test_yaml_syntax_error_and_missing_file(self):
        path = os.path.join(tempfile.mkdtemp(), "broken.yaml")
        with open(path, "w") as f:
            f.write("smtp:\n  listen: [\"127.0.0.1:2525\"\n  hostname: x\n")
        result = run_cli("check-config", "-c", path)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, rf"{path}:\d+: \(syntax\)")
        result = run_cli("check-config", "-c", "/nonexistent/unsubrelay.yaml")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("cannot open", result.stderr)

    def test_run_refuses_an_invalid_configuration_with_the_same_messages(self):
        path = os.path.join(tempfile.mkdtemp(), "bad.yaml")
        with open(path, "w") as f:
            f.write(BAD_CONFIG)
        checked = run_cli("check-config", "-c", path)
        ran = run_cli("run", "-c", path)
        self.assertNotEqual(ran.returncode, 0)
        for line in checked.stderr.splitlines()[:-1]:
            self.assertIn(line, ran.stderr)
        self.assertIn("not starting", ran.stderr)

    def test_usage_errors(self):
        self.assertEqual(run_cli().returncode, 64)
        self.assertEqual(run_cli("run").returncode, 64)  # no -c
        self.assertEqual(run_cli("frobnicate", "-c", "x").returncode, 64)
        self.assertEqual(run_cli("version").returncode, 0)


class SignalTest(unittest.TestCase):
    def test_sigterm_lets_a_message_in_data_finish_then_exits(self):
        relay = Relay().start()
        idle = RawClient(relay.port)
        idle.reply()
        busy = RawClient(relay.port)
        busy.reply()
        busy.command("EHLO client.test")
        busy.command("MAIL FROM:<a@example.com>")
        busy.command("RCPT TO:<b@example.org>")
        self.assertEqual(busy.command("DATA")[0], 354)
        busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        time.sleep(0.2)
        relay.proc.send_signal(signal.SIGTERM)
        # The idle session is told and closed.
        code, text = idle.reply()
        self.assertEqual((code, text[4:9]), (421, "4.3.2"), text)
        self.assertTrue(idle.closed())
        # New connections are refused.
        wait_until(lambda: not _connectable(relay.port), what="listener closed")
        # The message in DATA completes and is acknowledged, then the session ends.
        busy.send(b"second half\r\n.\r\n")
        code, text = busy.reply()
        self.assertEqual(code, 250, text)
        code, text = busy.reply()
        self.assertEqual(code, 421, text)
        self.assertEqual(relay.proc.wait(30), 0)
        relay.proc = None
        relay.logfile.close()
        files = relay.outbox_files()
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            self.assertTrue(f.read().endswith(b"first half\r\nsecond half\r\n"))

    def test_sighup_reloads_users_and_refuses_a_broken_file(self):
        relay = Relay().start()
        try:
            relay.log = {"level": "info"}
            relay.write_config()
            relay.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "reloaded" in relay.read_log(), what="reload")
            relay.extra = {"nonsense_key": 1}
            relay.write_config()
            relay.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "reload refused" in relay.read_log(), what="refused reload")
            self.assertIn("nonsense_key: unknown key", relay.read_log())
            # Still serving.
            c = RawClient(relay.port)
            self.assertEqual(c.reply()[0], 220)
            c.close()
        finally:
            self.assertEqual(relay.stop(), 0)

    def test_systemd_notify_ready_and_stopping(self):
        sock_path = os.path.join(tempfile.mkdtemp(), "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(20)
        relay = Relay()
        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        relay.logfile = open(relay.log_path, "ab")
        relay.proc = subprocess.Popen([BIN, "run", "-c", relay.config_path], cwd=relay.dir, env=env,
                                      stdout=relay.logfile, stderr=subprocess.STDOUT)
        try:
            self.assertEqual(sock.recv(100), b"READY=1")
            self.assertTrue(_connectable(relay.port))  # READY means listening
            relay.proc.send_signal(signal.SIGTERM)
            self.assertEqual(sock.recv(100), b"STOPPING=1")
        finally:
            self.assertEqual(relay.stop(), 0)
            sock.close()


class SystemdUnitTest(unittest.TestCase):
    def test_unit_verifies_and_is_hardened(self):
        # The unit CMake configured beside the binary (cmake/install.cmake), as the package installs it.
        with open(os.path.join(os.path.dirname(os.path.abspath(BIN)), "systemd", "unsubrelay.service")) as f:
            unit = f.read()
        for directive in ("Type=notify", "User=unsubrelay", "ProtectSystem=strict", "StateDirectory=unsubrelay",
                          "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "ExecReload=/bin/kill -HUP $MAINPID"):
            self.assertIn(directive, unit)
        self.assertNotIn("@", unit.replace("@system-service", "").replace("@privileged", "").replace("@resources", ""))
        # systemd's own parser checks every directive (the binary path must exist for it).
        exec_bin = re.search(r"^ExecStart=(\S+) run", unit, re.M).group(1)
        path = os.path.join(tempfile.mkdtemp(), "unsubrelay.service")
        with open(path, "w") as f:
            f.write(unit.replace(exec_bin, os.path.abspath(BIN)))
        # Documentation=man:unsubrelay(8): verify runs man, pointed at the repository's page.
        manpath = tempfile.mkdtemp()
        os.mkdir(os.path.join(manpath, "man8"))
        os.symlink(os.path.join(REPO, "man", "unsubrelay.8"), os.path.join(manpath, "man8", "unsubrelay.8"))
        result = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                                env={**os.environ, "MANPATH": manpath})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr.strip(), "")


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    unittest.main()
