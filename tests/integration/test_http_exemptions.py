"""Issue 11: the per-address rate limit must not take the relay out of a load balancer.

/healthz is never rate-limited (a load balancer polls it from one address);
/metrics is not either for the networks in http.metrics_networks (Prometheus),
and answers 403 to every other client once they are set (issue 22;
test_api_scopes.py). Everything else still is: the limit keeps its 429.
"""

import unittest

from relay import Relay


class RateLimitExemptionTest(unittest.TestCase):
    def test_healthz_is_never_rate_limited(self):
        with Relay(extra={"http": {"requests_per_minute": 1}}) as relay:
            self.assertEqual(relay.http("GET", "/u/not-a-token")[0], 400)  # takes the one request allowed
            self.assertEqual(relay.http("GET", "/u/not-a-token")[0], 429)
            for _ in range(30):
                status, headers, body = relay.http("GET", "/healthz")
                self.assertEqual(status, 200, body)

    def test_healthz_always_and_metrics_from_scrapers_are_exempt(self):
        # 1 request a minute: the second ordinary request from 127.0.0.1 gets 429.
        with Relay(extra={"http": {"requests_per_minute": 1, "metrics_networks": ["127.0.0.0/8"]}}) as relay:
            for _ in range(30):
                status, _, body = relay.http("GET", "/healthz")
                self.assertEqual(status, 200, body)
            self.assertEqual(relay.http("HEAD", "/healthz")[0], 200)
            for _ in range(10):
                status, _, body = relay.http("GET", "/metrics")
                self.assertEqual(status, 200, body)
                self.assertIn(b"unsubrelay_connections_total", body)
            codes = [relay.http("GET", "/u/not-a-token")[0] for _ in range(3)]
            self.assertIn(429, codes, "the limit itself must still hold for other paths")
            self.assertEqual(relay.http("GET", "/healthz")[0], 200)  # even right after a 429

    def test_metrics_from_other_networks_are_refused_and_still_limited(self):
        with Relay(extra={"http": {"requests_per_minute": 1, "metrics_networks": ["10.0.0.0/8"]}}) as relay:
            codes = [relay.http("GET", "/metrics")[0] for _ in range(3)]
            self.assertEqual(codes[0], 403)
            self.assertIn(429, codes)


if __name__ == "__main__":
    unittest.main()
