// limits_test.cpp: issue 11: the descriptor budget that keeps HTTP from starving
// SMTP, the accept back-off, the rate-limit exemptions, the tls and http.tls keys.
#include <gtest/gtest.h>

#include "unsubrelay/app/descriptors.hpp"
#include "unsubrelay/common/accept_pause.hpp"
#include "unsubrelay/config/config.hpp"
#include "unsubrelay/http/server.hpp"

using namespace unsubrelay;
using std::chrono::milliseconds;

TEST(DescriptorBudget, HttpGetsOnlyWhatSmtpAndTheReserveLeave) {
  config::Config cfg;
  cfg.smtp.limits.max_connections = 100;
  cfg.upstream.max_connections = 10;
  cfg.http.max_connections = 1000;
  // reserve 128 + 2 x 10, SMTP 2 x 100: 1,024 leaves 676 for HTTP.
  auto b = app::plan_descriptors(1024, cfg);
  EXPECT_EQ(b.reserve, 148u);
  EXPECT_EQ(b.smtp, 200u);
  EXPECT_EQ(b.http_connections, 676u);
  EXPECT_EQ(b.wanted, 1348u);
  EXPECT_FALSE(b.enough());
  // Plenty of descriptors: http.max_connections itself.
  b = app::plan_descriptors(65536, cfg);
  EXPECT_EQ(b.http_connections, 1000u);
  EXPECT_TRUE(b.enough());
  // A starved limit still leaves the service reachable, with the floor.
  b = app::plan_descriptors(256, cfg);
  EXPECT_EQ(b.http_connections, app::DescriptorBudget::min_http);
  // Never more than configured, even below the floor.
  cfg.http.max_connections = 4;
  EXPECT_EQ(app::plan_descriptors(256, cfg).http_connections, 4u);
}

TEST(AcceptBackoff, DoublesToASecondAndLogsOnceASecond) {
  AcceptBackoff b;
  const auto t0 = AcceptBackoff::Clock::now();
  auto s = b.failed(t0);
  EXPECT_EQ(s.delay, milliseconds(10));
  ASSERT_TRUE(s.log.has_value());
  EXPECT_EQ(*s.log, 0u);
  std::size_t logged = 1;
  auto now = t0;
  for (int i = 0; i < 20; ++i) {  // a failure every 100 ms for 2 s
    now += milliseconds(100);
    s = b.failed(now);
    if (s.log) ++logged;
  }
  EXPECT_EQ(s.delay, milliseconds(1000));
  EXPECT_EQ(logged, 3u);  // at 0, 1 s and 2 s
  for (int i = 0; i < 5; ++i) {  // 5 more within the same second: not logged
    now += milliseconds(100);
    EXPECT_FALSE(b.failed(now).log.has_value());
  }
  now += milliseconds(1000);
  s = b.failed(now);
  ASSERT_TRUE(s.log.has_value());
  EXPECT_EQ(*s.log, 5u);  // the failures not logged in between are counted
  b.succeeded();
  EXPECT_EQ(b.failed(now + milliseconds(5)).delay, milliseconds(10));
}

TEST(RateLimitExemption, HealthAlwaysMetricsOnlyFromScrapers) {
  config::Http h;
  h.metrics_networks = {*config::Network::parse("10.0.0.0/8")};
  EXPECT_TRUE(http::exempt_from_rate_limit(h, "/healthz", "192.0.2.1"));
  EXPECT_TRUE(http::exempt_from_rate_limit(h, "/healthz?probe=1", "192.0.2.1"));
  EXPECT_TRUE(http::exempt_from_rate_limit(h, "/metrics", "10.1.2.3"));
  EXPECT_FALSE(http::exempt_from_rate_limit(h, "/metrics", "192.0.2.1"));
  EXPECT_FALSE(http::exempt_from_rate_limit(h, "/u/TOKEN", "10.1.2.3"));
  EXPECT_FALSE(http::exempt_from_rate_limit(h, "/healthzx", "10.1.2.3"));
}

TEST(ConfigIssue11, TlsProfileAndHttpsKeys) {
  auto r = config::load_text("tls: {profile: modern}\nhttp: {max_connections: 50, metrics_networks: [\"10.0.0.0/8\"]}\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config.tls.profile, config::TlsProfile::modern);
  EXPECT_EQ(r.config.http.max_connections, 50u);
  EXPECT_EQ(r.config.http.metrics_networks.size(), 1u);
  EXPECT_EQ(config::load_text("").config.tls.profile, config::TlsProfile::intermediate);

  r = config::load_text("tls: {profile: old}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].path, "tls.profile");
  r = config::load_text("tls: {ciphers: \"NOT-A-CIPHER\"}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].path, "tls.ciphers");
  r = config::load_text("http: {listen_tls: [\"127.0.0.1:8443\"]}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].path, "http.listen_tls");
  r = config::load_text("http: {tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}}\n");
  ASSERT_FALSE(r.ok());
  bool wants_listener = false;
  for (const auto& e : r.errors) wants_listener |= e.path == "http.listen_tls";
  EXPECT_TRUE(wants_listener);
}
