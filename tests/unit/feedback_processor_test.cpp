// The pure core of the feedback transport: a report to one store::Feedback,
// and only through a token that verifies.
#include <gtest/gtest.h>

#include "unsubrelay/feedback/processor.hpp"

namespace fb = unsubrelay::feedback;
namespace tk = unsubrelay::token;
namespace st = unsubrelay::store;

namespace {

constexpr long long now = 1800000000;

tk::KeySet keys() {
  std::vector<std::string> errors;
  return *tk::KeySet::from_keys({{"k1", std::string(32, 'q')}}, errors);
}

std::string token_for(const std::string& email_id, const std::string& launch) {
  tk::Claims c;
  c.uid.fill(7);
  c.email_id = email_id;
  c.launch_list_id = launch;
  c.issued = static_cast<std::uint32_t>(now - 60);
  return tk::sign(c, keys().signing());
}

fb::Addresses addresses() {
  unsubrelay::config::Feedback f;
  f.enabled = true;
  f.return_path_domain = "bounces.example.com";
  f.complaint_addresses = {"fbl@example.com"};
  return fb::Addresses(f);
}

std::string dsn(const std::string& action, const std::string& status) {
  return "From: MAILER-DAEMON@mx.example.org\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
         "--B\r\nContent-Type: text/plain\r\n\r\nsorry\r\n"
         "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
         "Final-Recipient: rfc822; a@example.org\r\nAction: " + action + "\r\nStatus: " + status +
         "\r\n\r\n--B--\r\n";
}

std::string arf(const std::string& returned_headers, const std::string& rcpt) {
  return "From: fbl@provider.example\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n\r\n"
         "--F\r\nContent-Type: text/plain\r\n\r\nabuse report\r\n"
         "--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: T/1\r\n"
         "Version: 1\r\nOriginal-Rcpt-To: " + rcpt + "\r\n\r\n"
         "--F\r\nContent-Type: text/rfc822-headers\r\n\r\n" + returned_headers + "\r\n--F--\r\n";
}

/// trusted: the SMTP client is in feedback.trusted_networks.
fb::Resolution resolve(const std::string& message, const std::string& rcpt, bool trusted = false) {
  return fb::resolve_report(message, rcpt, addresses(), keys(), now, fb::Origin{"Q1", trusted});
}

}  // namespace

TEST(FeedbackProcessor, HardDsnToTheVerpAddressNamesTheTokensContact) {
  const auto t = token_for("501", "9001");
  const auto r = resolve(dsn("failed", "5.1.1"), "b+" + t + "@bounces.example.com");
  ASSERT_TRUE(r.report);
  EXPECT_EQ(r.report->kind, st::FeedbackKind::hard_bounce);
  EXPECT_EQ(r.report->status, "5.1.1");
  EXPECT_EQ(r.report->launch_list_id, "9001");
  EXPECT_EQ(r.report->email_id, "501");
  EXPECT_EQ(r.report->source, "dsn");
  EXPECT_FALSE(r.report->uid.empty());
  EXPECT_EQ(r.report->dedup_key, "dsn:9001:" + r.report->uid + ":hard_bounce");
}

TEST(FeedbackProcessor, DelayedPolicyAndUnreadableDsns) {
  const auto rcpt = "b+" + token_for("501", "9001") + "@bounces.example.com";
  EXPECT_EQ(resolve(dsn("delayed", "4.2.2"), rcpt).report->kind, st::FeedbackKind::soft_bounce);
  EXPECT_EQ(resolve(dsn("failed", "5.7.1"), rcpt).report->kind, st::FeedbackKind::blocked);
  EXPECT_FALSE(resolve(dsn("delivered", "2.0.0"), rcpt).report);
  // No parseable status: the VERP token still names the contact, as a soft bounce.
  const auto r = resolve("Subject: out of office\r\n\r\nI am away.\r\n", rcpt);
  ASSERT_TRUE(r.report);
  EXPECT_EQ(r.report->kind, st::FeedbackKind::soft_bounce);
  EXPECT_FALSE(r.report->uid.empty());
}

TEST(FeedbackProcessor, ForgedVerpTokenNamesNobody) {
  auto t = token_for("501", "9001");
  t.back() = t.back() == 'A' ? 'B' : 'A';
  const auto r = resolve(dsn("failed", "5.1.1"), "b+" + t + "@bounces.example.com");
  ASSERT_TRUE(r.report);
  EXPECT_TRUE(r.report->uid.empty());
  EXPECT_TRUE(r.report->address.empty());
  EXPECT_EQ(r.report->dedup_key, "dsn:nobody:Q1");
}

TEST(FeedbackProcessor, ArfRedactedToTheListUnsubscribeHeader) {
  const auto t = token_for("521", "9201");
  const auto r = resolve(arf("List-Unsubscribe: <https://unsub.example.com/u/" + t + ">", "xxxxx@example.org"),
                         "FBL@example.com");
  ASSERT_TRUE(r.report);
  EXPECT_EQ(r.report->kind, st::FeedbackKind::complaint);
  EXPECT_EQ(r.report->launch_list_id, "9201");
  EXPECT_EQ(r.report->status, "abuse");
  EXPECT_NE(r.how.find("list-unsubscribe"), std::string::npos) << r.how;
}

TEST(FeedbackProcessor, ArfWithABadTokenNeverFallsBackToTheRecipient) {
  auto t = token_for("521", "9201");
  t[t.size() - 2] = t[t.size() - 2] == 'x' ? 'y' : 'x';
  const auto message = arf("List-Unsubscribe: <https://unsub.example.com/u/" + t + ">", "victim@example.org");
  for (const bool trusted : {false, true}) {
    const auto r = resolve(message, "fbl@example.com", trusted);
    EXPECT_FALSE(r.report);
    ASSERT_TRUE(r.unverified);
    EXPECT_EQ(r.unverified->reason, "bad_token");
  }
  EXPECT_FALSE(resolve("Subject: not a report\r\n\r\nhello\r\n", "fbl@example.com").report);
  EXPECT_FALSE(resolve("Subject: not a report\r\n\r\nhello\r\n", "fbl@example.com").unverified);
}

// Issue 22: an address proves nothing. From an untrusted client, a report
// naming its contact only by Original-Rcpt-To (and To:) is unverified: no
// report to record, nothing applied; from a trusted network it is applied.
TEST(FeedbackProcessor, AddressOnlyArfIsAppliedOnlyFromATrustedClient) {
  const auto message = arf("To: <victim@example.org>\r\nSubject: hi", "victim@example.org");
  const auto outside = resolve(message, "fbl@example.com", false);
  EXPECT_FALSE(outside.report);
  ASSERT_TRUE(outside.unverified);
  EXPECT_EQ(outside.unverified->reason, "address_only");
  EXPECT_EQ(outside.unverified->source, "arf");
  EXPECT_EQ(outside.unverified->queue_id, "Q1");
  EXPECT_NE(outside.unverified->detail.find("Feedback-Type: abuse"), std::string::npos);
  EXPECT_NE(outside.how.find("victim@example.org"), std::string::npos) << outside.how;  // logged, never stored

  const auto inside = resolve(message, "fbl@example.com", true);
  ASSERT_TRUE(inside.report);
  EXPECT_FALSE(inside.unverified);
  EXPECT_EQ(inside.report->address, "victim@example.org");
  EXPECT_EQ(inside.report->kind, st::FeedbackKind::complaint);
  EXPECT_EQ(inside.report->dedup_key, "arf:rcpt:victim@example.org");
}

TEST(FeedbackProcessor, TokenArfAppliesFromAnyClientAndNamelessArfIsUnverified) {
  const auto t = token_for("521", "9201");
  const auto r = resolve(arf("List-Unsubscribe: <https://unsub.example.com/u/" + t + ">", "victim@example.org"),
                         "fbl@example.com", false);
  ASSERT_TRUE(r.report);  // the token proves the contact; Original-Rcpt-To is not used
  EXPECT_TRUE(r.report->address.empty());
  EXPECT_EQ(r.report->launch_list_id, "9201");
  for (const bool trusted : {false, true}) {
    const auto nameless = resolve(arf("Subject: hi", "redacted@example.org"), "fbl@example.com", trusted);
    EXPECT_FALSE(nameless.report);
    ASSERT_TRUE(nameless.unverified);
    EXPECT_EQ(nameless.unverified->reason, "no_contact");
  }
}
