// Hostile reports: 10,000 parts, 1 MB lines, deep nesting, garbage headers,
// thousands of recipients. Each parser must finish in linear time (a CPU
// budget per test, cpu_budget.hpp), keep its results within the named limits,
// and never take a wrong contact from the garbage.
#include <gtest/gtest.h>

#include <string>

#include "cpu_budget.hpp"

#include "unsubrelay/feedback/arf.hpp"
#include "unsubrelay/feedback/dsn.hpp"
#include "unsubrelay/feedback/locate.hpp"
#include "unsubrelay/feedback/ses.hpp"
#include "unsubrelay/feedback/sns.hpp"

namespace fb = unsubrelay::feedback;
using unsubrelay::test_env::CpuBudget;

namespace {

const std::string report_head =
    "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n";

std::string status_part(const std::string& fields) {
  return "--b\r\nContent-Type: message/delivery-status\r\n\r\n" + fields + "\r\n";
}

}  // namespace

TEST(FeedbackBounds, TenThousandParts) {
  const CpuBudget budget(2.0, "TenThousandParts");
  std::string msg = report_head;
  for (int i = 0; i < 10000; ++i) msg += "--b\r\nContent-Type: text/plain\r\n\r\npart\r\n";
  msg += status_part("Final-Recipient: rfc822; late@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n") + "--b--\r\n";
  const auto p = fb::parse_dsn(msg);
  // The status part lies beyond the part limit: not read, and said so.
  EXPECT_FALSE(p.ok());
  EXPECT_TRUE(p.report.recipients.empty());
  bool noted = false;
  for (const auto& n : p.notes) noted = noted || n.find("more than 1000 parts") != std::string::npos;
  EXPECT_TRUE(noted);
  EXPECT_FALSE(fb::parse_arf(msg).ok());
}

TEST(FeedbackBounds, OneMegabyteLines) {
  const CpuBudget budget(2.0, "OneMegabyteLines");
  const std::string huge(1024 * 1024, 'a');
  // In the status part: the field is cut at max_field_bytes, the rest still read.
  std::string msg = report_head + status_part("Final-Recipient: rfc822; x@example.com\r\nAction: failed\r\n"
                                              "Diagnostic-Code: smtp; 550 5.1.1 " + huge + "\r\nStatus: 5.1.1\r\n") +
                    "--b--\r\n";
  auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.report.recipients.size(), 1u);
  EXPECT_EQ(p.report.recipients[0].diagnostic.size(), fb::ReportLimits{}.max_field_bytes - 6);  // after "smtp; "
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::hard);
  // In the top header: over the header limit, unreadable, no crash.
  p = fb::parse_dsn("Subject: " + huge + "\r\n\r\nbody\r\n");
  EXPECT_EQ(p.error, fb::DsnError::unreadable);
  EXPECT_EQ(fb::parse_arf("X-Junk: " + huge + "\r\n\r\n").error, fb::ArfError::unreadable);
  // A 1 MB line of token characters is no token.
  EXPECT_TRUE(fb::tokens_in_text("/u/" + std::string(1024 * 1024, 'A'), 16).empty());
  EXPECT_EQ(fb::address_token("b+" + std::string(1024 * 1024, 'A') + "@x.example", "b+"), "");
}

TEST(FeedbackBounds, DeepNesting) {
  const CpuBudget budget(2.0, "DeepNesting");
  std::string msg;
  for (int i = 0; i < 5000; ++i) {
    msg += "Content-Type: multipart/mixed; boundary=n" + std::to_string(i) + "\r\n\r\n--n" + std::to_string(i) + "\r\n";
  }
  msg += "Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; deep@example.com\r\nAction: failed\r\n";
  const auto p = fb::parse_dsn(msg);
  EXPECT_FALSE(p.ok());  // deeper than max_depth: never reached
  EXPECT_TRUE(fb::returned_message_tokens(msg, {}).empty());
}

TEST(FeedbackBounds, GarbageHeadersAndBodies) {
  const CpuBudget budget(2.0, "GarbageHeadersAndBodies");
  std::string garbage;
  std::uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245 + 12345;
    garbage.push_back(static_cast<char>((x >> 16) & 0xff));
  }
  const auto p = fb::parse_dsn(garbage);
  EXPECT_FALSE(p.ok());
  const auto a = fb::parse_arf(garbage);
  EXPECT_FALSE(a.ok());
  EXPECT_LE(fb::returned_message_tokens(garbage, {}).size(), 16u);
  // Header-shaped garbage inside a status part: skipped, never a recipient.
  const auto msg = report_head + status_part(": no name\r\n \r\n\t\r\nno colon here\r\nname with space: x\r\n" + garbage) +
                   "--b--\r\n";
  const auto q = fb::parse_dsn(msg);
  for (const auto& r : q.report.recipients) EXPECT_LE(r.final_recipient.size(), fb::ReportLimits{}.max_field_bytes);
}

TEST(FeedbackBounds, ManyRecipientsAndFields) {
  const CpuBudget budget(2.0, "ManyRecipientsAndFields");
  std::string fields;
  for (int i = 0; i < 3000; ++i) {
    fields += "Final-Recipient: rfc822; r" + std::to_string(i) + "@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n";
  }
  fb::ReportLimits limits;
  limits.max_fields = 100000;
  const auto p = fb::parse_dsn(report_head + status_part(fields) + "--b--\r\n", limits);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.report.recipients.size(), limits.max_recipients);
  // With the default field limit, reading stops at max_fields.
  const auto q = fb::parse_dsn(report_head + status_part(fields) + "--b--\r\n");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q.report.recipients.size(), 667u);  // 2,000 fields: 666 whole groups and the start of one more
}

TEST(FeedbackBounds, FeedbackReportWithManyRcptTo) {
  const CpuBudget budget(2.0, "FeedbackReportWithManyRcptTo");
  std::string fields = "Feedback-Type: abuse\r\n";
  for (int i = 0; i < 5000; ++i) fields += "Original-Rcpt-To: <x" + std::to_string(i) + "@example.com>\r\n";
  const std::string msg = "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n"
                          "--b\r\nContent-Type: message/feedback-report\r\n\r\n" + fields + "--b--\r\n";
  const auto p = fb::parse_arf(msg);
  ASSERT_TRUE(p.ok());
  EXPECT_LE(p.report.original_rcpt_to.size(), fb::ReportLimits{}.max_recipients);
}

TEST(FeedbackBounds, DeeplyNestedJson) {
  const CpuBudget budget(2.0, "DeeplyNestedJson");
  const std::string deep = std::string(30000, '[') + std::string(30000, ']');  // a recursive parser would overflow its stack
  EXPECT_EQ(fb::parse_sns(deep).error, "not a JSON object");
  EXPECT_EQ(fb::parse_ses(deep).error, "not a JSON object");
  const std::string deep_member = R"({"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":)" +
                                  std::string(30000, '[') + std::string(30000, ']') + "}}";
  const auto p = fb::parse_ses(deep_member);
  ASSERT_TRUE(p.notification.has_value());  // a nested array is no recipient
  EXPECT_TRUE(p.notification->bounced.empty());
}
