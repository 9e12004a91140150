"""check-config and run on a configuration with tenants (SPEC Part 3): a good
one passes, and each problem is printed as FILE:LINE: tenants[N].key: message."""

import os
import shutil
import subprocess
import tempfile
import unittest

from relay import BIN


def run_cli(*args, cwd=None, timeout=30):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


class TenantsCheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="unsubrelay-tenants-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        for key_id, name in (("top1", "top-keys.yaml"), ("acme1", "acme-keys.yaml"), ("top1", "clash-keys.yaml")):
            made = run_cli("keygen", "--id", key_id, "-o", self.path(name))
            self.assertEqual(made.returncode, 0, made.stderr)
        self.write("users", "acme-app:$6$salt$hash\nops:$6$salt$hash\n")
        self.write("admin-keys", "admin-key-1\n")
        self.write("acme-api-keys", "acme-key-1 read\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def top_level(self):
        return (
            "smtp:\n"
            '  allow_networks: ["10.0.0.0/8", "127.0.0.0/8"]\n'
            f"  auth: {{users_file: {self.path('users')}, require_tls: false}}\n"
            f"unsubscribe: {{keys_file: {self.path('top-keys.yaml')}}}\n"
            f"http: {{api_keys_file: {self.path('admin-keys')}}}\n"
            "feedback: {return_path_domain: bounces.example.com}\n"
            "tenants:\n"
        )

    def test_good_tenants_pass(self):
        config = self.write("good.yaml", self.top_level() + (
            "  - id: acme\n"
            "    smtp_users: [acme-app]\n"
            '    networks: ["10.20.0.0/16"]\n'
            "    sender_domains: [acme.example]\n"
            f"    keys_file: {self.path('acme-keys.yaml')}\n"
            f"    api_keys_file: {self.path('acme-api-keys')}\n"
            "    unsubscribe: {base_url: \"https://unsub.acme.example\"}\n"
            "    feedback: {return_path_domain: bounces.acme.example}\n"
            "    limits: {messages_per_hour: 1000, delivery_weight: 3}\n"
            "  - id: default\n"
            "    smtp_users: [ops]\n"
        ))
        result = run_cli("check-config", "-c", config)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration OK", result.stdout)

    def test_each_problem_names_its_tenant_and_line(self):
        config = self.write("bad.yaml", self.top_level() + (
            "  - id: acme\n"                                                  # 8
            "    smtp_users: [acme-app, ghost]\n"                             # 9
            '    networks: ["192.168.0.0/16"]\n'                              # 10
            "    sender_domains: [acme.example]\n"                            # 11
            f"    keys_file: {self.path('clash-keys.yaml')}\n"                # 12
            f"    api_keys_file: {self.path('admin-keys')}\n"                 # 13
            "    unsubscribe: {campaign_header: X-C}\n"                       # 14
            "  - id: beta\n"                                                  # 15
            "    sender_domains: [ACME.example]\n"                            # 16
            "    smtp_users: [acme-app]\n"                                    # 17
        ))
        result = run_cli("check-config", "-c", config)
        self.assertEqual(result.returncode, 78, result.stderr)  # EX_CONFIG
        expected = [
            f"{config}:9: tenants[0].smtp_users[1]: 'ghost' is not in smtp.auth.users_file",
            f"{config}:10: tenants[0].networks[0]: '192.168.0.0/16' is not inside any smtp.allow_networks entry",
            f"{config}:12: tenants[0].keys_file: key id top1 is also in unsubscribe.keys_file",
            f"{config}:13: tenants[0].api_keys_file: {self.path('admin-keys')}:1: this key is also in "
            f"http.api_keys_file ({self.path('admin-keys')}:1)",
            f"{config}:14: tenants[0].unsubscribe.campaign_header: installation-wide: set it at the top level",
            f"{config}:15: tenants[1].keys_file: is required",
            f"{config}:16: tenants[1].sender_domains[0]: 'acme.example' is also in tenants[0].sender_domains[0]",
            f"{config}:17: tenants[1].smtp_users[0]: 'acme-app' is also in tenants[0].smtp_users[0]",
        ]
        for line in expected:
            self.assertIn(line, result.stderr)
        self.assertIn(f"{config}: {len(expected)} error(s)", result.stderr)
        self.assertNotIn("admin-key-1", result.stderr)  # never a key in a message

        ran = run_cli("run", "-c", config)
        self.assertNotEqual(ran.returncode, 0)
        for line in expected:
            self.assertIn(line, ran.stderr)
        self.assertIn("not starting", ran.stderr)


if __name__ == "__main__":
    unittest.main()
