// Abuse feedback reports (RFC 5965, RFC 6590 redaction) and finding the
// contact's token in them, on the fixtures in tests/data/feedback/.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "feedback_fixtures.hpp"
#include "unsubrelay/feedback/arf.hpp"
#include "unsubrelay/feedback/locate.hpp"
#include "unsubrelay/token/token.hpp"

namespace fb = unsubrelay::feedback;
namespace tk = unsubrelay::token;

namespace {

using feedback_fixtures::read_fixture;
using feedback_fixtures::t1;
using feedback_fixtures::t2;
using feedback_fixtures::t3;

fb::LocateOptions options() {
  fb::LocateOptions o;
  o.return_path_domain = "bounces.example.net";
  return o;
}

}  // namespace

// The fixtures' tokens are real: signed with key "fx" (32 bytes of 'k'), so a
// caller that verifies candidates finds the contact.
TEST(FeedbackArf, FixtureTokensVerify) {
  std::vector<std::string> errors;
  const auto keys = tk::KeySet::from_keys({{"fx", std::string(32, 'k')}}, errors);
  ASSERT_TRUE(keys.has_value());
  for (const auto& t : {t1, t2, t3}) {
    const auto v = tk::verify(t, *keys, 1800000000);
    ASSERT_TRUE(v.claims.has_value()) << t << ": " << tk::describe(v.error);
  }
  EXPECT_EQ(tk::verify(t1, *keys, 1800000000).claims->launch_list_id, "1111");
  EXPECT_EQ(tk::verify(t3, *keys, 1800000000).claims->email_id, "3333");
}

TEST(FeedbackArf, Rfc5965Example) {
  const auto msg = read_fixture("arf-rfc5965.eml");
  const auto p = fb::parse_arf(msg);
  ASSERT_TRUE(p.ok()) << fb::describe(p.error);
  const auto& r = p.report;
  EXPECT_EQ(r.feedback_type, "abuse");
  EXPECT_EQ(r.user_agent, "SomeGenerator/1.0");
  EXPECT_EQ(r.version, "1");
  EXPECT_EQ(r.original_mail_from, "b+" + t1 + "@bounces.example.net");
  ASSERT_EQ(r.original_rcpt_to.size(), 1u);
  EXPECT_EQ(r.original_rcpt_to[0], "user@example.com");
  EXPECT_EQ(r.arrival_date, "Thu, 8 Mar 2005 14:00:00 EDT");
  EXPECT_EQ(r.source_ip, "192.0.2.1");
  EXPECT_EQ(r.reporting_mta, "mail.example.com");
  ASSERT_EQ(r.reported_domain.size(), 1u);
  EXPECT_EQ(r.reported_domain[0], "example.net");
  ASSERT_EQ(r.reported_uri.size(), 1u);
  EXPECT_EQ(r.reported_uri[0], "http://example.net/earn_money.html");
  EXPECT_FALSE(r.returned_headers_only);
  const auto returned = r.returned.of(msg);
  EXPECT_TRUE(returned.starts_with("Return-Path: <b+" + t1));
  EXPECT_TRUE(returned.ends_with("Spam Spam Spam\r\nSpam Spam Spam"));  // the delimiter's CRLF is not the body's
  EXPECT_EQ(fb::unredacted_recipient(r), "user@example.com");

  const auto candidates = fb::complaint_token_candidates(msg, r, options());
  ASSERT_EQ(candidates.size(), 1u);  // Return-Path and Original-Mail-From name the same token
  EXPECT_EQ(candidates[0].source, fb::TokenSource::return_path);
  EXPECT_EQ(candidates[0].token, t1);
}

TEST(FeedbackArf, RedactedReportResolvesThroughListUnsubscribe) {
  const auto msg = read_fixture("arf-redacted.eml");
  const auto p = fb::parse_arf(msg);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.report.user_agent, "Yahoo!-Mail-Feedback/2.0");
  ASSERT_EQ(p.report.original_rcpt_to.size(), 2u);
  // A hashed local part cannot be told from a real one; "redacted" can.
  EXPECT_FALSE(fb::looks_redacted(p.report.original_rcpt_to[0]));
  EXPECT_TRUE(fb::looks_redacted(p.report.original_rcpt_to[1]));
  EXPECT_TRUE(p.report.returned_headers_only);
  EXPECT_TRUE(p.report.original_mail_from.empty());

  const auto candidates = fb::complaint_token_candidates(msg, p.report, options());
  ASSERT_EQ(candidates.size(), 1u);  // the mailto and the URL carry the same token
  EXPECT_EQ(candidates[0].source, fb::TokenSource::list_unsubscribe);
  EXPECT_EQ(candidates[0].token, t3);
}

TEST(FeedbackArf, BodyLinksInQuotedPrintableAndBase64Parts) {
  const auto msg = read_fixture("arf-body-link.eml");
  const auto p = fb::parse_arf(msg);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.report.version, "0.1");
  const auto candidates = fb::complaint_token_candidates(msg, p.report, options());
  ASSERT_EQ(candidates.size(), 1u);  // the QP text's /u/ link (soft line break inside) and the HTML's ?e= link
  EXPECT_EQ(candidates[0].source, fb::TokenSource::body);
  EXPECT_EQ(candidates[0].token, t2);
  EXPECT_EQ(fb::unredacted_recipient(p.report), "contact@hotmail.example");
}

TEST(FeedbackArf, CandidatesComeInSpecOrder) {
  const std::string returned =
      "Return-Path: <b+" + t1 + "@bounces.example.net>\r\n"
      "List-Unsubscribe: <https://relay.example.net/u/" + t2 + ">\r\n"
      "Content-Type: text/plain\r\n\r\nhttps://relay.example.net/u/" + t3 + "\r\n";
  const std::string msg =
      "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
      "Original-Mail-From: <b+AAAAAAAAAAAAAAAAAAAAAAAA@bounces.example.net>\r\n\r\n"
      "--b\r\nContent-Type: message/rfc822\r\n\r\n" + returned + "--b--\r\n";
  const auto p = fb::parse_arf(msg);
  ASSERT_TRUE(p.ok());
  const auto c = fb::complaint_token_candidates(msg, p.report, options());
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].source, fb::TokenSource::return_path);
  EXPECT_EQ(c[0].token, t1);
  EXPECT_EQ(c[1].source, fb::TokenSource::original_mail_from);
  EXPECT_EQ(c[1].token, "AAAAAAAAAAAAAAAAAAAAAAAA");
  EXPECT_EQ(c[2].source, fb::TokenSource::list_unsubscribe);
  EXPECT_EQ(c[2].token, t2);
  EXPECT_EQ(c[3].source, fb::TokenSource::body);
  EXPECT_EQ(c[3].token, t3);
}

TEST(FeedbackArf, ReturnPathOfAnotherDomainIsNoCandidate) {
  const std::string returned = "Return-Path: <b+" + t1 + "@elsewhere.example>\r\n\r\n";
  EXPECT_TRUE(fb::returned_message_tokens(returned, options()).empty());
}

TEST(FeedbackArf, NotAReportAndMissingFeedbackType) {
  EXPECT_EQ(fb::parse_arf("Subject: hi\r\n\r\nplain mail\r\n").error, fb::ArfError::not_a_report);
  const std::string dsn =
      "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--b--\r\n";
  EXPECT_EQ(fb::parse_arf(dsn).error, fb::ArfError::not_a_report);
  const std::string no_type =
      "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/feedback-report\r\n\r\nUser-Agent: x/1\r\n--b--\r\n";
  EXPECT_EQ(fb::parse_arf(no_type).error, fb::ArfError::no_feedback_type);
}

TEST(FeedbackArf, ReportTypeMissingStillReadWithANote) {
  const std::string msg =
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: Abuse\r\n--b--\r\n";
  const auto p = fb::parse_arf(msg);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.report.feedback_type, "abuse");
  EXPECT_FALSE(p.notes.empty());
  EXPECT_TRUE(p.report.returned.empty());
}

TEST(FeedbackArf, LooksRedacted) {
  EXPECT_TRUE(fb::looks_redacted("redacted@example.com"));
  EXPECT_TRUE(fb::looks_redacted("REDACTED-123@example.com"));
  EXPECT_TRUE(fb::looks_redacted("xxxxxxxx@example.com"));
  EXPECT_TRUE(fb::looks_redacted("****@example.com"));
  EXPECT_TRUE(fb::looks_redacted("example.com"));
  EXPECT_TRUE(fb::looks_redacted("@example.com"));
  EXPECT_FALSE(fb::looks_redacted("max@example.com"));
}

TEST(FeedbackLocate, AddressToken) {
  EXPECT_EQ(fb::address_token("b+" + t1 + "@bounces.example.net", "b+"), t1);
  EXPECT_EQ(fb::address_token("<B+" + t1 + "@BOUNCES.example.net>", "b+", "bounces.example.net"), t1);
  EXPECT_EQ(fb::address_token("News <b+" + t1 + "@bounces.example.net>", "b+"), t1);
  EXPECT_EQ(fb::address_token("rfc822; b+" + t1 + "@bounces.example.net", "b+"), t1);
  EXPECT_EQ(fb::address_token("b+" + t1 + "@other.example", "b+", "bounces.example.net"), "");
  EXPECT_EQ(fb::address_token("c+" + t1 + "@bounces.example.net", "b+"), "");
  EXPECT_EQ(fb::address_token("b+short@bounces.example.net", "b+"), "");
  EXPECT_EQ(fb::address_token("b+" + t1 + "!x@bounces.example.net", "b+"), "");
  EXPECT_EQ(fb::address_token("b+" + std::string(600, 'A') + "@bounces.example.net", "b+"), "");
  EXPECT_EQ(fb::address_token("", "b+"), "");
}

TEST(FeedbackLocate, UrlToken) {
  EXPECT_EQ(fb::url_token("https://relay.example.net/u/" + t1), t1);
  EXPECT_EQ(fb::url_token("http://127.0.0.1:8080/u/" + t1 + "/resubscribe"), t1);
  EXPECT_EQ(fb::url_token("https://relay.example.net/u/" + t1 + "?utm=x#top"), t1);
  EXPECT_EQ(fb::url_token("https://www.example.com/unsubscribe.html?e=" + t2), t2);
  EXPECT_EQ(fb::url_token("https://www.example.com/unsubscribe.html?lang=de&e=" + t2 + "&x=1"), t2);
  EXPECT_EQ(fb::url_token("https://www.example.com/page?ee=" + t2), "");
  EXPECT_EQ(fb::url_token("https://www.example.com/u/" + t1 + "x!"), "");
  EXPECT_EQ(fb::url_token("https://www.example.com/u/short"), "");
  EXPECT_EQ(fb::url_token("https://www.example.com/"), "");
}

TEST(FeedbackLocate, TokensInText) {
  const std::string html = "<a href=\"https://x.example/p?a=1&amp;e=" + t2 + "\">x</a> and https://r.example/u/" +
                           t1 + ". Again: https://r.example/u/" + t1 + " and ;e=" + t3;
  const auto found = fb::tokens_in_text(html, 16);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], t2);
  EXPECT_EQ(found[1], t1);
  EXPECT_EQ(fb::tokens_in_text(html, 1).size(), 1u);
  EXPECT_TRUE(fb::tokens_in_text(std::string(100000, '/'), 16).empty());
}
