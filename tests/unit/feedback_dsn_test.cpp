// Delivery status notifications (RFC 3464, RFC 6533, plain-text bounces) on
// the fixtures in tests/data/feedback/, and the SPEC Part 2 bounce kinds.
#include <gtest/gtest.h>

#include "ci_require.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "feedback_fixtures.hpp"
#include "unsubrelay/feedback/dsn.hpp"
#include "unsubrelay/feedback/locate.hpp"

namespace fb = unsubrelay::feedback;

namespace {

using feedback_fixtures::read_fixture;
using feedback_fixtures::t1;
using feedback_fixtures::t2;
using feedback_fixtures::t3;

}  // namespace

TEST(FeedbackDsn, Rfc3464ExampleFailedWithTemporaryStatusIsSoft) {
  const auto msg = read_fixture("dsn-rfc3464.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok()) << fb::describe(p.error);
  EXPECT_EQ(p.report.format, fb::DsnFormat::rfc3464);
  EXPECT_EQ(p.report.reporting_mta, "example.com");
  EXPECT_EQ(p.report.arrival_date, "Sat, 2 Jul 1994 17:10:28 -0400");
  ASSERT_EQ(p.report.recipients.size(), 1u);
  const auto& r = p.report.recipients[0];
  EXPECT_EQ(r.final_recipient, "louisl@larry.slip.example.org");
  EXPECT_EQ(r.action, "failed");
  EXPECT_EQ(r.status, "4.0.0");
  EXPECT_EQ(r.diagnostic_type, "smtp");
  EXPECT_EQ(r.diagnostic, "426 connection timed out");
  EXPECT_EQ(r.last_attempt_date, "Thu, 7 Jul 1994 17:15:49 -0400");
  EXPECT_EQ(fb::classify(r), fb::BounceKind::soft);
  // The returned message is a byte range of the input: the whole message/rfc822 body.
  const auto returned = p.report.returned.of(msg);
  EXPECT_TRUE(returned.starts_with("Return-Path: <b+" + t1 + "@bounces.example.net>\r\n"));
  EXPECT_TRUE(returned.ends_with("The body of the returned message.\r\n"));
  EXPECT_FALSE(p.report.returned_headers_only);
}

TEST(FeedbackDsn, PostfixHardBounceWithReturnedHeaders) {
  const auto msg = read_fixture("dsn-postfix.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.report.reporting_mta, "mx.example.org");
  ASSERT_EQ(p.report.recipients.size(), 1u);
  const auto& r = p.report.recipients[0];
  EXPECT_EQ(r.final_recipient, "nobody@example.org");
  EXPECT_EQ(r.original_recipient, "nobody@example.org");
  EXPECT_EQ(r.status, "5.1.1");
  EXPECT_EQ(r.remote_mta, "mail.example.org");
  // Folded Diagnostic-Code: unfolded with one space.
  EXPECT_EQ(r.diagnostic,
            "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table");
  EXPECT_EQ(fb::classify(r), fb::BounceKind::hard);
  EXPECT_TRUE(p.report.returned_headers_only);
  const auto returned = p.report.returned.of(msg);
  EXPECT_TRUE(returned.starts_with("Return-Path: <b+" + t1));
  EXPECT_NE(returned.find("Message-ID: <20261124101500.1@example.net>"), std::string_view::npos);
  // The VERP token of the returned header, as the caller looks for it.
  const auto tokens = fb::returned_message_tokens(returned, {});
  ASSERT_FALSE(tokens.empty());
  EXPECT_EQ(tokens[0].source, fb::TokenSource::return_path);
  EXPECT_EQ(tokens[0].token, t1);
}

TEST(FeedbackDsn, ExchangeStatusWithThreeDigitDetailAndNestedAlternative) {
  const auto msg = read_fixture("dsn-exchange.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.report.recipients.size(), 1u);
  const auto& r = p.report.recipients[0];
  EXPECT_EQ(r.final_recipient, "jane.doe@contoso.example");
  EXPECT_EQ(r.status, "5.1.10");
  EXPECT_EQ(r.diagnostic_type, "smtp");
  EXPECT_TRUE(r.diagnostic.starts_with("550 5.1.10 RESOLVER.ADR.RecipientNotFound"));
  EXPECT_EQ(fb::classify(r), fb::BounceKind::hard);
  EXPECT_FALSE(p.report.returned_headers_only);
  EXPECT_TRUE(p.report.returned.of(msg).starts_with("Return-Path: <b+" + t2));
}

TEST(FeedbackDsn, GmailFoldedDiagnosticAndMultipartRelatedNotice) {
  const auto msg = read_fixture("dsn-gmail.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.report.recipients.size(), 1u);
  const auto& r = p.report.recipients[0];
  EXPECT_EQ(r.final_recipient, "no.such.user@gmail.com");
  EXPECT_EQ(r.status, "5.1.1");
  EXPECT_TRUE(r.diagnostic.starts_with("550-5.1.1 The email account that you tried to reach does not exist."));
  EXPECT_NE(r.diagnostic.find("NoSuchUser"), std::string::npos);
  EXPECT_TRUE(r.remote_mta.starts_with("gmail-smtp-in.l.google.com."));
  EXPECT_EQ(fb::classify(r), fb::BounceKind::hard);
  const auto tokens = fb::returned_message_tokens(p.report.returned.of(msg), {});
  ASSERT_EQ(tokens.size(), 1u);  // Return-Path and List-Unsubscribe carry the same token: one candidate
  EXPECT_EQ(tokens[0].token, t1);
}

TEST(FeedbackDsn, DelayedIsSoft) {
  const auto p = fb::parse_dsn(read_fixture("dsn-delayed.eml"));
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.report.recipients.size(), 1u);
  EXPECT_EQ(p.report.recipients[0].action, "delayed");
  EXPECT_EQ(p.report.recipients[0].status, "4.2.2");
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::soft);
}

TEST(FeedbackDsn, SeveralRecipientsEachClassified) {
  const auto p = fb::parse_dsn(read_fixture("dsn-multi-status.eml"));
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p.report.recipients.size(), 4u);
  EXPECT_EQ(p.report.recipients[0].final_recipient, "gone@example.com");
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::hard);     // 5.2.1 mailbox disabled
  EXPECT_EQ(fb::classify(p.report.recipients[1]), fb::BounceKind::blocked);  // 5.7.1 policy
  EXPECT_EQ(p.report.recipients[2].status, "5.1.6");                         // "5.1.6 (comment)"
  EXPECT_EQ(fb::classify(p.report.recipients[2]), fb::BounceKind::hard);
  EXPECT_EQ(fb::classify(p.report.recipients[3]), fb::BounceKind::blocked);  // 5.1.8: the sender's domain
}

TEST(FeedbackDsn, GlobalDeliveryStatusBase64WithUtf8Address) {
  const auto msg = read_fixture("dsn-global.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok()) << fb::describe(p.error);
  EXPECT_EQ(p.report.format, fb::DsnFormat::rfc6533);
  EXPECT_EQ(p.report.reporting_mta, "mx.example.jp");
  ASSERT_EQ(p.report.recipients.size(), 1u);
  EXPECT_EQ(p.report.recipients[0].final_recipient, "\xE7\x94\xB0\xE4\xB8\xAD@example.jp");  // 田中
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::hard);
  EXPECT_TRUE(p.report.returned_headers_only);  // message/global-headers
  EXPECT_TRUE(p.report.returned.of(msg).starts_with("Return-Path: <b+" + t2));
}

TEST(FeedbackDsn, SloppyReportWithBareLfCaseAndMissingBlankLines) {
  const auto msg = read_fixture("dsn-sloppy.eml");
  ASSERT_EQ(msg.find('\r'), std::string::npos);
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok()) << fb::describe(p.error);
  EXPECT_EQ(p.report.reporting_mta, "sloppy.example");  // "DNS;" folded onto the next line
  ASSERT_EQ(p.report.recipients.size(), 2u);
  EXPECT_EQ(p.report.recipients[0].final_recipient, "First@Sloppy.Example");
  EXPECT_EQ(p.report.recipients[0].action, "failed");
  EXPECT_EQ(p.report.recipients[0].diagnostic, "550 no such user");
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::hard);
  EXPECT_EQ(p.report.recipients[1].final_recipient, "second@sloppy.example");
  EXPECT_EQ(fb::classify(p.report.recipients[1]), fb::BounceKind::soft);
  EXPECT_TRUE(p.report.returned.of(msg).starts_with("Return-Path: <b+" + t1));
}

TEST(FeedbackDsn, QmailPlainTextBounce) {
  const auto msg = read_fixture("dsn-qmail.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok()) << fb::describe(p.error);
  EXPECT_EQ(p.report.format, fb::DsnFormat::plain_text);
  ASSERT_EQ(p.report.recipients.size(), 2u);
  EXPECT_EQ(p.report.recipients[0].final_recipient, "nouser@qmail.example.org");
  EXPECT_EQ(p.report.recipients[0].status, "5.1.1");  // "(#5.1.1)"
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::hard);
  EXPECT_EQ(p.report.recipients[1].status, "5.7.1");
  EXPECT_EQ(fb::classify(p.report.recipients[1]), fb::BounceKind::blocked);
  const auto returned = p.report.returned.of(msg);
  EXPECT_TRUE(returned.starts_with("Return-Path: <b+" + t2));
  EXPECT_TRUE(returned.ends_with("Hello.\r\n"));
}

TEST(FeedbackDsn, EximPlainTextBounce) {
  const auto msg = read_fixture("dsn-exim.eml");
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok()) << fb::describe(p.error);
  EXPECT_EQ(p.report.format, fb::DsnFormat::plain_text);
  ASSERT_EQ(p.report.recipients.size(), 1u);
  EXPECT_EQ(p.report.recipients[0].final_recipient, "someone@exim.example.org");
  EXPECT_EQ(p.report.recipients[0].status, "5.1.1");
  EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::hard);
  EXPECT_TRUE(p.report.returned.of(msg).starts_with("Return-path: <b+" + t3));
}

TEST(FeedbackDsn, AnAutoReplyIsNoBounce) {
  const std::string reply =
      "From: Jane <jane@example.com>\r\nTo: b+" + t1 + "@bounces.example.net\r\nSubject: Out of office\r\n"
      "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday. Your message could not be read.\r\n"
      "This is a permanent error? No, just a holiday.\r\n";
  const auto p = fb::parse_dsn(reply);
  EXPECT_EQ(p.error, fb::DsnError::not_a_report);
  EXPECT_TRUE(p.report.recipients.empty());
}

TEST(FeedbackDsn, StatusPartWithoutRecipients) {
  const std::string msg =
      "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x.example\r\n\r\n--b--\r\n";
  const auto p = fb::parse_dsn(msg);
  EXPECT_EQ(p.error, fb::DsnError::no_recipients);
  EXPECT_EQ(p.report.reporting_mta, "x.example");
}

TEST(FeedbackDsn, WrongReportTypeIsReadWithANote) {
  const std::string msg =
      "Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\n"
      "Action: failed\r\nStatus: 5.1.1\r\n--b--\r\n";
  const auto p = fb::parse_dsn(msg);
  ASSERT_TRUE(p.ok());
  ASSERT_FALSE(p.notes.empty());
  EXPECT_NE(p.notes[0].find("disposition-notification"), std::string::npos);
}

TEST(FeedbackDsn, FindEnhancedStatus) {
  EXPECT_EQ(fb::find_enhanced_status("550 5.1.1 User unknown"), "5.1.1");
  EXPECT_EQ(fb::find_enhanced_status("550-5.1.1 The email"), "5.1.1");
  EXPECT_EQ(fb::find_enhanced_status("no mailbox (#5.1.1)"), "5.1.1");
  EXPECT_EQ(fb::find_enhanced_status("5.1.10 RESOLVER"), "5.1.10");
  EXPECT_EQ(fb::find_enhanced_status("host 5.1.1.4 said 4.2.2"), "4.2.2");  // not an IPv4 address
  EXPECT_EQ(fb::find_enhanced_status("10.5.1.1"), "");
  EXPECT_EQ(fb::find_enhanced_status("version 3.1.1"), "");
  EXPECT_EQ(fb::find_enhanced_status("5.1.1234"), "");
  EXPECT_EQ(fb::find_enhanced_status(""), "");
}

TEST(FeedbackDsn, ClassifyStatusFollowsSpec) {
  EXPECT_EQ(fb::classify_status("5.1.1"), fb::BounceKind::hard);
  EXPECT_EQ(fb::classify_status("5.1.0"), fb::BounceKind::hard);
  EXPECT_EQ(fb::classify_status("5.1.10"), fb::BounceKind::hard);
  EXPECT_EQ(fb::classify_status("5.2.1"), fb::BounceKind::hard);
  EXPECT_EQ(fb::classify_status("5.2.2"), fb::BounceKind::blocked);  // mailbox full, permanent: not "does not exist"
  EXPECT_EQ(fb::classify_status("5.7.1"), fb::BounceKind::blocked);
  EXPECT_EQ(fb::classify_status("5.1.7"), fb::BounceKind::blocked);
  EXPECT_EQ(fb::classify_status("5.1.8"), fb::BounceKind::blocked);
  EXPECT_EQ(fb::classify_status("4.2.2"), fb::BounceKind::soft);
  EXPECT_EQ(fb::classify_status("2.0.0"), fb::BounceKind::unknown);
  EXPECT_EQ(fb::classify_status(""), fb::BounceKind::unknown);
  EXPECT_EQ(fb::classify_status("garbage"), fb::BounceKind::unknown);
}

TEST(FeedbackDsn, ClassifyRecipientUsesActionThenStatusThenDiagnostic) {
  fb::DsnRecipient r;
  r.action = "delivered";
  r.status = "5.1.1";
  EXPECT_EQ(fb::classify(r), fb::BounceKind::delivered);
  r.action = "delayed";
  EXPECT_EQ(fb::classify(r), fb::BounceKind::soft);
  r.action = "";  // missing Action: read as failed
  EXPECT_EQ(fb::classify(r), fb::BounceKind::hard);
  r.action = "failed";
  r.status = "";
  r.diagnostic = "550 5.7.1 rejected by policy";
  EXPECT_EQ(fb::classify(r), fb::BounceKind::blocked);
  r.diagnostic = "550 rejected";
  EXPECT_EQ(fb::classify(r), fb::BounceKind::unknown);
  r.action = "exploded";
  EXPECT_EQ(fb::classify(r), fb::BounceKind::unknown);
}

TEST(FeedbackDsn, TypedAddress) {
  EXPECT_EQ(fb::typed_address("rfc822; a@b.example"), "a@b.example");
  EXPECT_EQ(fb::typed_address("RFC822; <a@b.example>"), "a@b.example");
  EXPECT_EQ(fb::typed_address("rfc822;a@b.example"), "a@b.example");
  EXPECT_EQ(fb::typed_address("a@b.example"), "a@b.example");
  EXPECT_EQ(fb::typed_address("utf-8; caf\\x{E9}@b.example"), "caf\xC3\xA9@b.example");
  EXPECT_EQ(fb::typed_address("utf-8; bad\\x{D800}@b.example"), "bad\\x{D800}@b.example");  // a surrogate stays escaped
  EXPECT_EQ(fb::typed_address(""), "");
}

// The Ruby mail gem's multipart/report fixtures (real MTAs, 2007-2010), read
// where they live: public test data the project may not copy.
TEST(FeedbackDsn, SharedCorpusReports) {
  const char* corpus = std::getenv("UNSUBRELAY_CORPUS");
  const std::filesystem::path dir = std::filesystem::path(corpus ? corpus : UNSUBRELAY_CORPUS_DIR) / "multipart_report_emails";
  UNSUBRELAY_REQUIRE(std::filesystem::is_directory(dir),
                     dir << " is not on this machine (set UNSUBRELAY_CORPUS to the mail-gem-fixtures directory)");
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    const auto msg = s.str();
    const auto p = fb::parse_dsn(msg);
    ++files;
    ASSERT_TRUE(p.ok()) << entry.path() << ": " << fb::describe(p.error);
    ASSERT_FALSE(p.report.recipients.empty()) << entry.path();
    for (const auto& r : p.report.recipients) {
      EXPECT_NE(r.final_recipient.find('@'), std::string::npos) << entry.path();
      EXPECT_NE(fb::classify(r), fb::BounceKind::delivered) << entry.path();
    }
    EXPECT_FALSE(p.report.returned.empty()) << entry.path();
    EXPECT_LE(p.report.returned.end, msg.size());
    const auto name = entry.path().filename().string();
    if (name == "report_530.eml") {
      EXPECT_EQ(p.report.recipients[0].final_recipient, "edwin@zzzzzzz.com");
      EXPECT_EQ(p.report.recipients[0].status, "5.3.0");
      EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::blocked);
      EXPECT_TRUE(p.report.returned_headers_only);
    }
    if (name == "multi_address_bounce1.eml" || name == "multi_address_bounce2.eml") {
      EXPECT_EQ(p.report.recipients.size(), 5u);
      for (const auto& r : p.report.recipients) EXPECT_EQ(fb::classify(r), fb::BounceKind::hard);
    }
    if (name == "report_422.eml") {
      EXPECT_EQ(p.report.recipients[0].status, "4.2.2");
      EXPECT_EQ(fb::classify(p.report.recipients[0]), fb::BounceKind::soft);
    }
    if (name == "multipart_report_multiple_status.eml") {
      // Its first message/delivery-status part is prose; the second holds the fields.
      EXPECT_EQ(p.report.recipients[0].final_recipient, "u@ci.com");
      EXPECT_EQ(p.report.reporting_mta, "schemailmta04.ci.com");
    }
  }
  EXPECT_EQ(files, 5u);
}
