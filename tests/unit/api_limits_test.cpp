// Issue 22 points 4 and 8: API key scopes and matching, the per-client
// rate-limit table, the contact page cursor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "config_errors.hpp"
#include "unsubrelay/http/api_keys.hpp"
#include "unsubrelay/http/client_limits.hpp"
#include "unsubrelay/store/contact_page.hpp"

namespace unsubrelay::http {
namespace {

using namespace std::chrono_literals;

TEST(ApiKeys, LinesKeysScopesAndComments) {
  const auto parsed = parse_api_keys("# keys\n\nall-key\n  read-key read  # the dashboard\r\n"
                                     "two-key\tREAD, export\nerase-key erase,\n",
                                     "/etc/keys");
  ASSERT_TRUE(parsed.ok()) << parsed.errors.front();
  ASSERT_EQ(parsed.keys.size(), 4u);
  EXPECT_EQ(parsed.keys[0].key, "all-key");
  EXPECT_EQ(parsed.keys[0].scopes, all_scopes);
  EXPECT_EQ(parsed.keys[0].line, 3u);
  EXPECT_EQ(parsed.keys[1].key, "read-key");
  EXPECT_EQ(parsed.keys[1].scopes, unsigned(scope_read));
  EXPECT_EQ(parsed.keys[2].scopes, unsigned(scope_read | scope_export));
  EXPECT_EQ(parsed.keys[3].scopes, unsigned(scope_erase));
}

TEST(ApiKeys, AWordThatMayBePartOfAKeyIsNotEchoed) {
  // An old-format line held one key, blanks and all: its second word is not shown.
  const auto parsed = parse_api_keys("Xk9q2 Zr8Tq7pLw3\n", "/etc/keys");
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].find("Zr8Tq7pLw3"), std::string::npos) << parsed.errors[0];
  EXPECT_NE(parsed.errors[0].find("/etc/keys:1: unknown scope (not shown"), std::string::npos) << parsed.errors[0];
}

TEST(ApiKeys, ErrorsNameFileAndLineAndNeverTheKey) {
  const auto parsed = parse_api_keys("good read\nsecret-one reed\nsecret-two read,,delete\ngood write\n"
                                     "bad\x01key\nsecret-three ,\n",
                                     "/etc/keys");
  ASSERT_EQ(parsed.errors.size(), 5u);
  EXPECT_EQ(parsed.errors[0].rfind("/etc/keys:2: unknown scope 'reed'", 0), 0u) << parsed.errors[0];
  EXPECT_EQ(parsed.errors[1].rfind("/etc/keys:3: unknown scope 'delete'", 0), 0u) << parsed.errors[1];
  EXPECT_EQ(parsed.errors[2].rfind("/etc/keys:4: the same key as line 1", 0), 0u) << parsed.errors[2];
  EXPECT_EQ(parsed.errors[3].rfind("/etc/keys:5: the key has a byte (0x01)", 0), 0u) << parsed.errors[3];
  EXPECT_EQ(parsed.errors[4].rfind("/etc/keys:6: a scope list without a scope", 0), 0u) << parsed.errors[4];
  for (const auto& e : parsed.errors) {
    EXPECT_EQ(e.find("secret"), std::string::npos) << e;
    EXPECT_EQ(e.find("good"), std::string::npos) << e;
  }
}

TEST(ApiKeys, ConfigReportsABadScopeWithTheKeysFileLine) {
  const auto path = std::filesystem::temp_directory_path() / ("api-keys-" + std::to_string(::getpid()));
  std::ofstream(path) << "# keys\nk1 read\nk2 read,delete\n";
  const auto r = config::load_text("http:\n  api_keys_file: " + path.string() + "\n");
  EXPECT_TRUE(config::has_error(r, "http.api_keys_file", 2, path.string() + ":3: unknown scope 'delete'"));
  std::ofstream(path) << "k1 read\nk2\n";
  EXPECT_TRUE(config::load_text("http:\n  api_keys_file: " + path.string() + "\n").ok());
  std::filesystem::remove(path);
}

TEST(ApiKeys, MatcherFindsExactKeysOnly) {
  const ApiKeyMatcher keys(parse_api_keys("alpha-key-123 read\nbeta-key-456\n", "k").keys);
  EXPECT_EQ(keys.scopes_of("alpha-key-123"), unsigned(scope_read));
  EXPECT_EQ(keys.scopes_of("beta-key-456"), all_scopes);
  for (const char* wrong : {"", "alpha-key-12", "alpha-key-1234", "Alpha-key-123", "beta-key-45", "read"}) {
    EXPECT_EQ(keys.scopes_of(wrong), 0u) << wrong;
  }
  EXPECT_EQ(ApiKeyMatcher().scopes_of(""), 0u);
}

TEST(ApiKeys, EveryApiRouteHasItsScope) {
  EXPECT_EQ(required_scopes("GET", "/api/v1/suppressions"), unsigned(scope_read));
  EXPECT_EQ(required_scopes("GET", "/api/v1/suppressions/a@example.org"), unsigned(scope_read));
  EXPECT_EQ(required_scopes("PUT", "/api/v1/suppressions/a@example.org"), unsigned(scope_write));
  EXPECT_EQ(required_scopes("DELETE", "/api/v1/suppressions/a@example.org"), unsigned(scope_write));
  EXPECT_EQ(required_scopes("POST", "/api/v1/suppressions/import"), unsigned(scope_import));
  EXPECT_EQ(required_scopes("GET", "/api/v1/contacts/a@example.org"), unsigned(scope_read | scope_export));
  EXPECT_EQ(required_scopes("DELETE", "/api/v1/contacts/a@example.org"), unsigned(scope_erase));
  EXPECT_EQ(required_scopes("POST", "/api/v2/email/unsubscribe"), unsigned(scope_write));
  EXPECT_EQ(required_scopes("GET", "/api/v2/email/9/responses/summary"), unsigned(scope_read));
  EXPECT_EQ(required_scopes("GET", "/api/v9/nothing"), 0u);  // any valid key: 404
  EXPECT_EQ(scope_names(scope_read | scope_export), "read or export");
}

TEST(ClientLimits, SprayOfAddressesDoesNotResetALimitedClient) {
  ClientLimits limits(60);  // 1 a second, a burst of 10
  const auto t0 = ClientLimits::Clock::time_point{} + 1h;
  int allowed = 0;
  while (limits.allow("192.0.2.1", t0)) ++allowed;
  EXPECT_EQ(allowed, 10);
  // 200,000 other addresses within the same millisecond; the limited client keeps asking.
  for (unsigned i = 0; i < 200000; ++i) {
    const auto address = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                         std::to_string(i & 255);
    limits.allow(address, t0);
    if (i % 1000 == 0) {
      EXPECT_FALSE(limits.allow("192.0.2.1", t0)) << "reset after " << i << " addresses";
    }
  }
  EXPECT_FALSE(limits.allow("192.0.2.1", t0));
  EXPECT_LE(limits.size(), ClientLimits::default_capacity);
  EXPECT_TRUE(limits.allow("192.0.2.1", t0 + 1s));  // refills at its rate
}

TEST(ClientLimits, LeastRecentlyUsedMakesRoom) {
  ClientLimits limits(60, 3);
  const auto t0 = ClientLimits::Clock::time_point{} + 1h;
  for (int i = 0; i < 10; ++i) limits.allow("192.0.2.1", t0);
  EXPECT_FALSE(limits.allow("192.0.2.1", t0));
  limits.allow("192.0.2.2", t0);
  limits.allow("192.0.2.1", t0);  // used again: the newest
  limits.allow("192.0.2.3", t0);
  limits.allow("192.0.2.4", t0);  // the table is full: .2, seen least recently, goes
  EXPECT_EQ(limits.size(), 3u);
  EXPECT_FALSE(limits.allow("192.0.2.1", t0));
}

TEST(ClientLimits, Ipv6CountsPerSlash64) {
  EXPECT_EQ(client_bucket("2001:db8:1:2::1"), client_bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  EXPECT_NE(client_bucket("2001:db8:1:2::1"), client_bucket("2001:db8:1:3::1"));
  EXPECT_EQ(client_bucket("2001:db8:1:2::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(client_bucket("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(client_bucket("::ffff:192.0.2.7"), "192.0.2.7");
  ClientLimits limits(60);
  const auto t0 = ClientLimits::Clock::time_point{} + 1h;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limits.allow(client_bucket("2001:db8::" + std::to_string(i + 1)), t0));
  EXPECT_FALSE(limits.allow(client_bucket("2001:db8::ffff"), t0)) << "one /64, one bucket";
  EXPECT_TRUE(limits.allow(client_bucket("2001:db8:0:1::1"), t0));
}

TEST(ContactPage, CursorRoundTripsAndRefusesOthers) {
  store::ContactPageQuery q;
  q.after_send = "L-0042";
  q.after_event = 77;
  q.after_feedback = 5;
  const auto back = store::decode_contact_cursor(store::encode_contact_cursor(q));
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->first);
  EXPECT_EQ(back->after_send, "L-0042");
  EXPECT_EQ(back->after_event, 77);
  EXPECT_EQ(back->after_feedback, 5);
  for (const char* bad : {"", "zz", "abc", "6331", "63311f1f1f", "63311f411f2d311f30"}) {
    EXPECT_FALSE(store::decode_contact_cursor(bad)) << bad;
  }
}

TEST(ContactPage, FinishKeepsLimitAndResumesAfterTheLastRow) {
  store::ContactPageQuery q;
  q.limit = 2;
  store::ContactRecord read;
  for (int i = 0; i < 3; ++i) read.sends.push_back({"", "L-" + std::to_string(i)});
  read.events.push_back({});
  read.events.back().id = 9;
  const auto page = store::finish_page(read, {}, q);
  EXPECT_EQ(page.record.sends.size(), 2u);
  ASSERT_FALSE(page.next_cursor.empty());
  const auto next = store::decode_contact_cursor(page.next_cursor);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->after_send, "L-1");
  EXPECT_EQ(next->after_event, 9);
  read.sends.resize(2);
  EXPECT_TRUE(store::finish_page(read, {}, q).next_cursor.empty());
}

}  // namespace
}  // namespace unsubrelay::http
