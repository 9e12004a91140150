// config_test.cpp: YAML validation, CIDR matching, endpoints.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "config_errors.hpp"
#include "unsubrelay/config/config.hpp"

using namespace unsubrelay::config;

TEST(Config, EmptyFileGivesTheEmbeddedDefaults) {
  const auto r = load_text("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config.smtp.listen.size(), 1u);
  EXPECT_EQ(r.config.smtp.listen[0].to_string(), "127.0.0.1:2525");
  EXPECT_EQ(r.config.smtp.limits.max_message_bytes, 26214400u);
  EXPECT_EQ(r.config.smtp.limits.max_recipients, 1000u);
  EXPECT_EQ(r.config.smtp.io_threads, 0u);  // one per core
  EXPECT_EQ(r.config.upstream.kind, UpstreamKind::directory);
  EXPECT_EQ(r.config.upstream.directory, "var/outbox");
  EXPECT_EQ(r.config.spool.path, "var/spool");
  EXPECT_EQ(r.config.spool.max_age_hours, 120u);
  ASSERT_EQ(r.config.smtp.allow_networks.size(), 2u);
  EXPECT_FALSE(r.config.smtp.hostname.empty());
}

TEST(Config, ReadsValuesAndIPv6Listeners) {
  const auto r = load_text(
      "smtp:\n  listen: [\"[::1]:2526\", \"0.0.0.0:25\"]\n  hostname: mx.example.com\n  max_recipients: 50\n"
      "  io_threads: 1\n"
      "upstream:\n  kind: smtp\n  host: smtp.example.com\n  port: 2587\n  tls: implicit\n"
      "  max_messages_per_second: 14.5\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config.smtp.listen[0].host, "::1");
  EXPECT_EQ(r.config.smtp.listen[0].port, 2526);
  EXPECT_EQ(r.config.smtp.listen[0].to_string(), "[::1]:2526");
  EXPECT_EQ(r.config.smtp.hostname, "mx.example.com");
  EXPECT_EQ(r.config.smtp.limits.max_recipients, 50u);
  EXPECT_EQ(r.config.smtp.io_threads, 1u);
  EXPECT_EQ(r.config.upstream.kind, UpstreamKind::smtp);
  EXPECT_EQ(r.config.upstream.port, 2587);
  EXPECT_EQ(r.config.upstream.tls, UpstreamTls::implicit);
  EXPECT_DOUBLE_EQ(r.config.upstream.max_messages_per_second, 14.5);
}

TEST(Config, CollectsEveryErrorWithPathAndLine) {
  const auto r = load_text(
      "smtp:\n"                                    // 1
      "  max_recipients: 0\n"                      // 2
      "  allow_networks: [\"10.0.0.0/8\", \"x\"]\n"  // 3
      "  typo: 1\n"                                // 4
      "upstream:\n"                                // 5
      "  kind: ses\n"                              // 6
      "spool:\n"                                   // 7
      "  retry_min_seconds: 100\n"                 // 8
      "  retry_max_seconds: 10\n"                  // 9
      "dkim:\n"                                    // 10
      "  - { domain: example.com }\n");            // 11
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(has_error(r, "smtp.max_recipients", 2, "between 1 and"));
  EXPECT_TRUE(has_error(r, "smtp.allow_networks[1]", 3, "not a CIDR"));
  EXPECT_TRUE(has_error(r, "smtp.typo", 4, "unknown key"));
  EXPECT_TRUE(has_error(r, "upstream.host", 6, "required"));
  EXPECT_TRUE(has_error(r, "spool.retry_max_seconds", 9, "less than"));
  EXPECT_TRUE(has_error(r, "dkim[0].selector", 11, "required"));
  EXPECT_EQ(r.errors.size(), 7u);  // the dkim entry also lacks key_file
}

TEST(Config, WrongTypesAndSyntax) {
  EXPECT_TRUE(has_error(load_text("smtp: [1, 2]\n"), "smtp", 1, "must be a map"));
  EXPECT_TRUE(has_error(load_text("log: {level: loud}\n"), "log.level", 1, "one of"));
  EXPECT_TRUE(has_error(load_text("smtp: {io_threads: 65}\n"), "smtp.io_threads", 1, "between 0 and 64"));
  EXPECT_TRUE(has_error(load_text("smtp:\n  auth: {require_tls: maybe}\n"), "smtp.auth.require_tls", 2,
                        "true or false"));
  const auto syntax = load_text("smtp: {listen: [\n");
  ASSERT_EQ(syntax.errors.size(), 1u);
  EXPECT_EQ(syntax.errors[0].path, "(syntax)");
  const auto two_docs = load_text("{}\n---\nfoo: 1\n");
  ASSERT_EQ(two_docs.errors.size(), 1u);
  EXPECT_NE(two_docs.errors[0].message.find("more than one"), std::string::npos);
}

TEST(Config, MissingFilesAreReported) {
  const auto r = load_text("smtp:\n  auth: {users_file: /nonexistent/users, require_tls: false}\n");
  EXPECT_TRUE(has_error(r, "smtp.auth.users_file", 2, "cannot read file"));
}

TEST(Network, MatchesIPv4IPv6AndMappedAddresses) {
  namespace ip = boost::asio::ip;
  const auto v4 = Network::parse("192.0.2.0/24");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->contains(ip::make_address("192.0.2.77")));
  EXPECT_FALSE(v4->contains(ip::make_address("192.0.3.1")));
  EXPECT_TRUE(v4->contains(ip::make_address("::ffff:192.0.2.9")));
  EXPECT_FALSE(v4->contains(ip::make_address("2001:db8::1")));
  const auto v6 = Network::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(ip::make_address("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->contains(ip::make_address("2001:db9::1")));
  const auto host = Network::parse("10.1.2.3");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->to_string(), "10.1.2.3/32");
  EXPECT_TRUE(Network::parse("0.0.0.0/0")->contains(ip::make_address("8.8.8.8")));
  const auto odd = Network::parse("10.0.0.0/9");
  EXPECT_TRUE(odd->contains(ip::make_address("10.127.0.1")));
  EXPECT_FALSE(odd->contains(ip::make_address("10.128.0.1")));
  for (const char* bad : {"10.0.0.0/33", "::1/129", "x", "10.0.0.0/", "10.0.0.0/a", "300.0.0.0/8", ""}) {
    EXPECT_FALSE(Network::parse(bad)) << bad;
  }
}

// Found by tests/fuzz/fuzz_config: YAML::LoadAll never returned on this input.
TEST(Config, FuzzFindingLoadAllHangIsBounded) {
  std::ifstream in(std::string(UNSUBRELAY_TEST_DATA) + "/fuzz/config-loadall-hang.yaml", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  ASSERT_FALSE(text.str().empty());
  const auto start = std::chrono::steady_clock::now();
  const auto r = load_text(text.str());
  EXPECT_FALSE(r.ok());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

TEST(Config, MaxImportBytesIsItsOwnValidatedLimit) {
  EXPECT_EQ(load_text("").config.http.max_import_bytes, 2147483648u);  // 2 GiB
  const auto r = load_text("http:\n  max_import_bytes: 1099511627776\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config.http.max_import_bytes, std::uint64_t{1} << 40);
  EXPECT_TRUE(has_error(load_text("http:\n  max_import_bytes: 1023\n"), "http.max_import_bytes", 2,
                        "between 1024 and 1099511627776"));
  EXPECT_TRUE(has_error(load_text("http: {max_import_bytes: 2GiB}\n"), "http.max_import_bytes", 1, "whole number"));
}

TEST(Config, StoreCacheMbIsBounded) {
  EXPECT_EQ(load_text("").config.store.cache_mb, 32u);
  EXPECT_EQ(load_text("store: {cache_mb: 8}\n").config.store.cache_mb, 8u);
  EXPECT_TRUE(has_error(load_text("store:\n  cache_mb: 1\n"), "store.cache_mb", 2, "between 2 and 4096"));
}
