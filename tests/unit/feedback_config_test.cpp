// feedback_config_test.cpp: the `feedback:` section: defaults, values, every error with its line.
#include <gtest/gtest.h>

#include "config_errors.hpp"
#include "unsubrelay/config/config.hpp"

using namespace unsubrelay::config;

TEST(FeedbackConfig, AbsentMeansPart1) {
  const auto r = load_text("");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.config.feedback.enabled);
  EXPECT_EQ(r.config.feedback.hard_bounce_limit, 0u);  // bounces never suppress
  EXPECT_TRUE(r.config.feedback.return_path_domain.empty());
  EXPECT_FALSE(r.config.feedback.ses_sns);
}

TEST(FeedbackConfig, PresentGivesTheSpecDefaults) {
  const auto r = load_text("feedback: {}\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& f = r.config.feedback;
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(f.hard_bounce_limit, 1u);
  EXPECT_EQ(f.soft_bounce_limit, 0u);
  EXPECT_EQ(f.bounce_suppression_days, 0u);
  EXPECT_TRUE(f.forward_to_sender);
  EXPECT_EQ(f.max_report_bytes, 1048576u);
}

TEST(FeedbackConfig, ReadsEveryKey) {
  const auto r = load_text(
      "feedback:\n"
      "  return_path_domain: Bounces.Example.com\n"
      "  complaint_addresses: [\"FBL@example.com\", \"jmrp@example.net\"]\n"
      "  forward_to_sender: false\n"
      "  hard_bounce_limit: 2\n"
      "  soft_bounce_limit: 5\n"
      "  bounce_suppression_days: 30\n"
      "  max_report_bytes: 2097152\n"
      "  ses_sns:\n"
      "    topic_arns: [\"arn:aws:sns:us-east-1:123456789012:ses-feedback\"]\n"
      "    cert_url_prefixes: [\"https://sns.us-east-1.amazonaws.com/\"]\n"
      "    fetch_timeout_seconds: 5\n"
      "    max_age_seconds: 7200\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string("x");
  const auto& f = r.config.feedback;
  EXPECT_EQ(f.return_path_domain, "bounces.example.com");
  EXPECT_EQ(f.complaint_addresses, (std::vector<std::string>{"fbl@example.com", "jmrp@example.net"}));
  EXPECT_FALSE(f.forward_to_sender);
  EXPECT_EQ(f.hard_bounce_limit, 2u);
  EXPECT_EQ(f.soft_bounce_limit, 5u);
  EXPECT_EQ(f.bounce_suppression_days, 30u);
  EXPECT_EQ(f.max_report_bytes, 2097152u);
  ASSERT_TRUE(f.ses_sns);
  EXPECT_EQ(f.ses_sns->topic_arns.size(), 1u);
  EXPECT_EQ(f.ses_sns->cert_url_prefixes.front(), "https://sns.us-east-1.amazonaws.com/");
  EXPECT_EQ(f.ses_sns->fetch_timeout_seconds, 5u);
  EXPECT_EQ(f.ses_sns->max_age_seconds, 7200u);
}

TEST(FeedbackConfig, EveryMistakeIsReportedWithItsLine) {
  const auto r = load_text(
      "feedback:\n"                                                     // 1
      "  return_path_domain: \"bounces@example.com\"\n"                 // 2
      "  complaint_addresses: [\"fbl@example.com\", \"not an address\"]\n"  // 3
      "  hard_bounce_limit: -1\n"                                       // 4
      "  colour: blue\n"                                                // 5
      "  ses_sns:\n"                                                    // 6
      "    topic_arns: [\"ses-feedback\"]\n"                            // 7
      "    cert_url_prefixes: [\"http://sns.us-east-1.amazonaws.com/\", \"https://sns.amazonaws.com\"]\n"  // 8
      "    ca_file: /nonexistent/ca.pem\n"                             // 9
      "    max_age_seconds: 60\n");                                     // 10
  EXPECT_TRUE(has_error(r, "feedback.return_path_domain", 2, "domain name")) << r.errors.size();
  EXPECT_TRUE(has_error(r, "feedback.complaint_addresses[1]", 3, "not an address"));
  EXPECT_TRUE(has_error(r, "feedback.hard_bounce_limit", 4, "whole number"));
  EXPECT_TRUE(has_error(r, "feedback.colour", 5, "unknown key"));
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.max_age_seconds", 10, ""));
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.topic_arns[0]", 7, "ARN"));
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.cert_url_prefixes[0]", 8, "https://HOST/"));
  // Without a '/' after the host, a prefix would also match sns.amazonaws.com.attacker.example.
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.cert_url_prefixes[1]", 8, "https://HOST/"));
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.ca_file", 9, "cannot read"));
  EXPECT_EQ(r.errors.size(), 9u);
}

TEST(FeedbackConfig, SesNeedsTopicsAndPrefixes) {
  const auto r = load_text("feedback:\n  ses_sns: {}\n");
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.topic_arns", 2, "at least one"));
  EXPECT_TRUE(has_error(r, "feedback.ses_sns.cert_url_prefixes", 2, "at least one"));
}

// Issue 22: who may name a contact by address alone, and how many forwards a sender gets.
TEST(FeedbackConfig, TrustedNetworksAndForwardPerHour) {
  const auto defaults = load_text("feedback: {}\n");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults.config.feedback.trusted_networks.empty());  // nobody by default
  EXPECT_EQ(defaults.config.feedback.forward_per_hour, 100u);

  const auto r = load_text("feedback:\n  trusted_networks: [\"192.0.2.0/24\", \"2001:db8::/32\"]\n"
                           "  forward_per_hour: 20\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string("x");
  ASSERT_EQ(r.config.feedback.trusted_networks.size(), 2u);
  EXPECT_EQ(r.config.feedback.trusted_networks[0].to_string(), "192.0.2.0/24");
  EXPECT_EQ(r.config.feedback.forward_per_hour, 20u);

  const auto bad = load_text("feedback:\n"                                  // 1
                             "  trusted_networks: [\"10.0.0.0/8\", \"mx.example.org\"]\n"  // 2
                             "  forward_per_hour: 0\n");                    // 3
  EXPECT_TRUE(has_error(bad, "feedback.trusted_networks[1]", 2, "not a CIDR network"));
  EXPECT_TRUE(has_error(bad, "feedback.forward_per_hour", 3, "between"));
  EXPECT_EQ(bad.errors.size(), 2u);
}
