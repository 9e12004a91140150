"""Monitoring (docs/monitoring/, docs/operations.md): the Prometheus alert rules
pass `promtool check rules` and their unit tests (`promtool test rules`), and
every metric the rules and the Grafana dashboard use is one a running relay
really exposes on /metrics, with the values the alerts rely on."""

import json
import os
import re
import smtplib
import subprocess
import tempfile
import unittest
import uuid

from relay import REPO, Relay, free_port, make_certificate, not_after

MONITORING = os.path.join(REPO, "docs", "monitoring")
RULES = os.path.join(MONITORING, "unsubrelay-alerts.yml")
DASHBOARD = os.path.join(MONITORING, "unsubrelay-dashboard.json")

# Metrics of SPEC Part 2's feedback processing (issue 12, src/feedback/recorder.cpp),
# used by the rules and the dashboard under the names that code exposes: each must be
# on /metrics, with its value on a relay that has recorded no feedback yet.
FEEDBACK_SAMPLES = {"unsubrelay_complaint_rate": 0, "unsubrelay_sent_after_optout_total": 0,
                    'unsubrelay_feedback_total{kind="hard_bounce",source="dsn"}': 0}
FEEDBACK_METRICS = {name.split("{")[0] for name in FEEDBACK_SAMPLES}


def metric_names(text):
    """unsubrelay_* metric names in PromQL text, histogram suffixes folded to the family."""
    names = set(re.findall(r"\bunsubrelay_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def dashboard_queries():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    # Grafana's label_values(SELECTOR, LABEL) variables: the selector is PromQL.
    for v in dashboard["templating"]["list"]:
        if "definition" in v:
            queries.append(re.fullmatch(r"label_values\((.+), *\w+\)", v["definition"]).group(1))
    return queries


def scrape(relay):
    status, _, body = relay.http("GET", "/metrics")
    if status != 200:
        raise AssertionError(f"/metrics answered {status}")
    return body.decode()


def exposed_families(metrics_text):
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", metrics_text, re.M)}


def sample(metrics_text, name_with_labels):
    m = re.search(r"^" + re.escape(name_with_labels) + r" (\S+)$", metrics_text, re.M)
    if not m:
        raise AssertionError(f"{name_with_labels} not in /metrics:\n{metrics_text}")
    return float(m.group(1))


class PromtoolTest(unittest.TestCase):
    def test_rules_are_valid(self):
        r = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 12 rules found", r.stdout)

    def test_rule_unit_tests_pass(self):
        r = subprocess.run(["promtool", "test", "rules", "unsubrelay-alerts.test.yml"], cwd=MONITORING,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_every_dashboard_query_is_valid_promql(self):
        # promtool parses each panel's query as a recording rule (Grafana's
        # $__rate_interval and $instance replaced by what Grafana would put there).
        rules = {"groups": [{"name": "dashboard", "rules": []}]}
        for i, q in enumerate(dashboard_queries()):
            expr = q.replace("$__rate_interval", "5m").replace("$instance", ".*")
            rules["groups"][0]["rules"].append({"record": f"dashboard:query{i}", "expr": expr})
        path = os.path.join(tempfile.mkdtemp(), "dashboard-queries.yml")
        with open(path, "w") as f:
            json.dump(rules, f)  # JSON is YAML
        r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreaterEqual(len(rules["groups"][0]["rules"]), 12)


class MetricsExposedTest(unittest.TestCase):
    def test_rules_and_dashboard_use_only_metrics_the_relay_exposes(self):
        cert_dir = tempfile.mkdtemp()
        cert, key = make_certificate(cert_dir)
        https_cert, https_key = make_certificate(tempfile.mkdtemp(), "unsub.localhost")
        relay = Relay(smtp={"tls": {"cert": cert, "key": key}},
                      extra={"http": {"listen_tls": [f"127.0.0.1:{free_port()}"],
                                      "tls": {"cert": https_cert, "key": https_key}}}).start()
        try:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                s.sendmail("a@example.com", ["b@example.org"], b"Subject: m\r\n\r\nhello\r\n")
            relay.wait_for_outbox(1)
            text = scrape(relay)
        finally:
            self.assertEqual(relay.stop(), 0)
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)

        exposed = exposed_families(text)
        with open(RULES) as f:
            used = metric_names(f.read())
        used |= metric_names("\n".join(dashboard_queries()))
        self.assertGreaterEqual(len(used), 14)
        self.assertTrue(FEEDBACK_METRICS <= used, sorted(FEEDBACK_METRICS - used))
        for name in sorted(used):
            self.assertIn(name, exposed, f"{name} is used by docs/monitoring/ but not on /metrics")
        for name, value in FEEDBACK_SAMPLES.items():
            self.assertEqual(sample(text, name), value, name)

        self.assertEqual(sample(text, "unsubrelay_delivered_total"), 1)
        self.assertEqual(sample(text, "unsubrelay_store_up"), 1)
        # Each served certificate's notAfter, as openssl reads it.
        for listener, path in (("smtp", cert), ("http", https_cert)):
            self.assertEqual(sample(text, f'unsubrelay_tls_certificate_expiry_timestamp_seconds{{listener="{listener}",'
                                          f'path="{path}"}}'), not_after(path))

    def test_store_up_drops_to_0_when_postgresql_refuses(self):
        server = os.environ.get("UNSUBRELAY_TEST_PG_URL")
        self.assertTrue(server, "run under scripts/test-postgres.sh, which starts the test PostgreSQL server")
        database = "monitoring_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
        relay = Relay(extra={"store": {"kind": "postgresql", "url": server.rsplit("/", 1)[0] + "/" + database}})
        # libpqxx 6.4 leaks libpq's result of a cut connection (lsan-libpq.supp); every other leak still fails.
        lsan = os.environ.get("LSAN_OPTIONS")
        os.environ["LSAN_OPTIONS"] = "suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                    "lsan-libpq.supp")
        self.addCleanup(lambda: os.environ.pop("LSAN_OPTIONS") if lsan is None else
                        os.environ.__setitem__("LSAN_OPTIONS", lsan))
        try:
            relay.start()
            self.assertEqual(sample(scrape(relay), "unsubrelay_store_up"), 1)
            # The database goes away under the relay: no new connection, the open one cut.
            subprocess.run(["psql", server, "-q", "-c", f"ALTER DATABASE {database} ALLOW_CONNECTIONS false",
                            "-c", f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"],
                           check=True, capture_output=True)
            self.assertEqual(sample(scrape(relay), "unsubrelay_store_up"), 0)
            status, _, body = relay.http("GET", "/healthz")
            self.assertEqual(status, 503, body)
        finally:
            self.assertEqual(relay.stop(), 0, relay.read_log()[-4000:])
            subprocess.run(["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                           check=False, capture_output=True)


if __name__ == "__main__":
    unittest.main()
