// session_test.cpp: the SMTP state machine with no socket: a scripted dialogue.
#include <gtest/gtest.h>

#include "unsubrelay/smtp/auth.hpp"
#include "unsubrelay/smtp/session.hpp"

using namespace unsubrelay::smtp;

namespace {

SessionPolicy policy(bool trusted = true) {
  SessionPolicy p;
  p.hostname = "relay.test";
  p.client_address = "192.0.2.10";
  p.client_trusted = trusted;
  p.limits.max_recipients = 3;
  p.limits.max_errors = 5;
  p.limits.max_message_bytes = 1000;
  return p;
}

int code(const Step& s) { return s.replies.empty() ? 0 : s.replies.back().code; }

std::string enhanced(const Step& s) { return s.replies.empty() ? "" : s.replies.back().enhanced; }

}  // namespace

TEST(Session, FullTransaction) {
  Session s(policy());
  EXPECT_EQ(s.greeting().wire(), "220 relay.test ESMTP unsubrelay\r\n");
  auto ehlo = s.on_line("EHLO client.test");
  ASSERT_EQ(ehlo.replies.size(), 1u);
  EXPECT_EQ(ehlo.replies[0].wire(),
            "250-relay.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
  EXPECT_EQ(code(s.on_line("MAIL FROM:<a@example.com> SIZE=500")), 250);
  EXPECT_EQ(code(s.on_line("RCPT TO:<b@example.org>")), 250);
  EXPECT_EQ(code(s.on_line("RCPT TO:<c@example.org>")), 250);
  auto data = s.on_line("DATA");
  EXPECT_EQ(code(data), 354);
  EXPECT_EQ(data.action, Action::receive_data);
  EXPECT_EQ(s.state(), SessionState::data);
  EXPECT_EQ(s.envelope().recipients.size(), 2u);
  const auto received = s.received_header("0123456789ABCDEF", 0);
  EXPECT_EQ(received.rfind("Received: from client.test ([192.0.2.10])\r\n\tby relay.test (unsubrelay) with ESMTP id "
                           "0123456789ABCDEF; ", 0), 0u);
  auto end = s.on_data_end({std::string("0123456789ABCDEF"), std::nullopt});
  EXPECT_EQ(end.replies[0].wire(), "250 2.0.0 Ok: queued as 0123456789ABCDEF\r\n");
  EXPECT_EQ(s.state(), SessionState::ready);
  EXPECT_TRUE(s.envelope().recipients.empty());
  EXPECT_EQ(s.on_line("QUIT").action, Action::close);
}

TEST(Session, OrderErrors) {
  auto p = policy();
  p.limits.max_errors = 100;
  Session s(p);
  EXPECT_EQ(code(s.on_line("MAIL FROM:<a@b.c>")), 503);
  EXPECT_EQ(code(s.on_line("HELO")), 501);
  EXPECT_EQ(code(s.on_line("HELO client")), 250);
  EXPECT_EQ(code(s.on_line("RCPT TO:<a@b.c>")), 503);
  EXPECT_EQ(code(s.on_line("DATA")), 503);
  EXPECT_EQ(code(s.on_line("MAIL FROM:<a@b.c>")), 250);
  EXPECT_EQ(code(s.on_line("DATA")), 503);
  EXPECT_EQ(s.errors(), 5u);
}

TEST(Session, RelayDeniedOutsideAllowNetworksWithoutAuth) {
  Session s(policy(false));
  s.on_line("EHLO client.test");
  s.on_line("MAIL FROM:<a@example.com>");
  for (const char* rcpt : {"<b@example.org>", "<user%host@relay.test>", "<@relay.test:b@example.org>",
                           "<\"b@example.org\"@relay.test>"}) {
    auto r = s.on_line(std::string("RCPT TO:") + rcpt);
    EXPECT_EQ(code(r), 554) << rcpt;
    EXPECT_EQ(enhanced(r), "5.7.1");
  }
}

TEST(Session, TooManyRecipientsIs452AndNotAnError) {
  Session s(policy());
  s.on_line("EHLO c");
  s.on_line("MAIL FROM:<a@b.c>");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(code(s.on_line("RCPT TO:<r@b.c>")), 250);
  auto r = s.on_line("RCPT TO:<r4@b.c>");
  EXPECT_EQ(code(r), 452);
  EXPECT_EQ(enhanced(r), "4.5.3");
  EXPECT_EQ(s.errors(), 0u);
}

TEST(Session, SizeAndParameters) {
  Session s(policy());
  s.on_line("EHLO c");
  auto r = s.on_line("MAIL FROM:<a@b.c> SIZE=1001");
  EXPECT_EQ(code(r), 552);
  EXPECT_EQ(enhanced(r), "5.3.4");
  EXPECT_EQ(code(s.on_line("MAIL FROM:<a@b.c> SIZE=abc")), 501);
  EXPECT_EQ(code(s.on_line("MAIL FROM:<a@b.c> SMTPUTF8")), 555);
  EXPECT_EQ(code(s.on_line("MAIL FROM:<a@b.c> BODY=8BITMIME")), 250);
  EXPECT_TRUE(s.envelope().body_8bit);
}

TEST(Session, ErrorCounterDisconnects) {
  Session s(policy());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(s.on_line("BOGUS").action, Action::none);
  auto last = s.on_line("BOGUS");
  EXPECT_EQ(last.action, Action::close);
  EXPECT_EQ(code(last), 421);
  EXPECT_EQ(s.state(), SessionState::closed);
}

TEST(Session, LongCommandLine) {
  Session s(policy());
  auto r = s.on_line("NOOP " + std::string(600, 'x'));
  EXPECT_EQ(code(r), 500);
}

TEST(Session, StartTlsResetsEverything) {
  auto p = policy();
  p.tls_available = true;
  Session s(p);
  auto ehlo = s.on_line("EHLO c");
  EXPECT_NE(ehlo.replies[0].wire().find("STARTTLS"), std::string::npos);
  s.on_line("MAIL FROM:<a@b.c>");
  auto tls = s.on_line("STARTTLS");
  EXPECT_EQ(tls.replies[0].wire(), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(tls.action, Action::start_tls);
  s.on_tls_established();
  EXPECT_EQ(s.state(), SessionState::connected);
  EXPECT_TRUE(s.envelope().sender.empty());
  EXPECT_EQ(code(s.on_line("RCPT TO:<x@y.z>")), 503);
  ehlo = s.on_line("EHLO c");
  EXPECT_EQ(ehlo.replies[0].wire().find("STARTTLS"), std::string::npos);
  EXPECT_EQ(code(s.on_line("STARTTLS")), 503);
}

TEST(Session, AuthPlainAndLogin) {
  auto p = policy(false);
  p.auth_available = true;
  p.auth_requires_tls = true;
  p.tls_available = true;
  p.verify_password = [](const std::string& u, const std::string& pw) { return u == "alice" && pw == "secret"; };
  Session s(p);
  s.on_line("EHLO c");
  EXPECT_EQ(code(s.on_line("AUTH PLAIN " + base64_encode(std::string("\0alice\0secret", 13)))), 538);
  s.on_tls_established();
  auto ehlo = s.on_line("EHLO c");
  EXPECT_NE(ehlo.replies[0].wire().find("AUTH PLAIN LOGIN"), std::string::npos);
  // Wrong password, then LOGIN with the right one.
  auto bad = s.on_line("AUTH PLAIN " + base64_encode(std::string("\0alice\0wrong", 12)));
  EXPECT_EQ(code(bad), 535);
  EXPECT_EQ(enhanced(bad), "5.7.8");
  EXPECT_EQ(s.on_line("AUTH LOGIN").replies[0].wire(), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(s.on_line(base64_encode("alice")).replies[0].wire(), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(code(s.on_line(base64_encode("secret"))), 235);
  EXPECT_EQ(s.auth_user(), "alice");
  EXPECT_EQ(code(s.on_line("AUTH PLAIN x")), 503);  // already authenticated
  s.on_line("MAIL FROM:<a@b.c>");
  EXPECT_EQ(code(s.on_line("RCPT TO:<anyone@example.org>")), 250);  // may relay now
  EXPECT_NE(s.received_header("ID", 0).find("with ESMTPSA"), std::string::npos);
}

TEST(Session, AuthPlainWithChallengeAndCancel) {
  auto p = policy();
  p.auth_available = true;
  p.auth_requires_tls = false;
  p.verify_password = [](const std::string&, const std::string&) { return true; };
  Session s(p);
  s.on_line("EHLO c");
  EXPECT_EQ(s.on_line("AUTH PLAIN").replies[0].wire(), "334 \r\n");
  EXPECT_EQ(s.state(), SessionState::auth_plain);
  EXPECT_EQ(code(s.on_line("*")), 501);
  EXPECT_EQ(s.state(), SessionState::ready);
  s.on_line("AUTH PLAIN");
  EXPECT_EQ(code(s.on_line("!!notbase64")), 501);
  EXPECT_EQ(code(s.on_line("AUTH CRAM-MD5")), 504);
}

TEST(Session, DataRefusalKeepsTheSession) {
  Session s(policy());
  s.on_line("EHLO c");
  s.on_line("MAIL FROM:<a@b.c>");
  s.on_line("RCPT TO:<d@e.f>");
  s.on_line("DATA");
  auto r = s.on_data_end({std::nullopt, reply(550, "5.5.2", "bare LF")});
  EXPECT_EQ(code(r), 550);
  EXPECT_EQ(s.state(), SessionState::ready);
  EXPECT_EQ(code(s.on_line("NOOP")), 250);
}

TEST(Session, HttpOnTheSmtpPortCloses) {
  Session s(policy());
  auto r = s.on_line("GET / HTTP/1.1");
  EXPECT_EQ(r.action, Action::close);
}

TEST(Auth, Base64AndPlain) {
  EXPECT_EQ(base64_decode("aGVsbG8="), std::optional<std::string>("hello"));
  EXPECT_EQ(base64_decode("aGVsbG8h"), std::optional<std::string>("hello!"));
  EXPECT_FALSE(base64_decode("aGVsbG8"));
  EXPECT_FALSE(base64_decode("a|==abcd"));
  auto c = decode_sasl_plain(base64_encode(std::string("\0bob\0pw", 7)));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "bob");
  EXPECT_EQ(c->password, "pw");
  EXPECT_FALSE(decode_sasl_plain(base64_encode("no nuls")));
  EXPECT_FALSE(decode_sasl_plain(base64_encode(std::string("\0\0pw", 4))));
}

namespace {

SessionPolicy feedback_policy() {
  auto p = policy(false);  // a client outside allow_networks, not authenticated
  p.limits.max_message_bytes = 50 * 1024 * 1024;
  p.limits.max_errors = 100;
  unsubrelay::config::Feedback f;
  f.return_path_domain = "bounces.example.com";
  f.complaint_addresses = {"fbl@example.com"};
  p.feedback = unsubrelay::feedback::Addresses(f);
  p.verp_valid = [](std::string_view token) { return token == "GOODTOKEN"; };
  p.max_report_bytes = 1048576;
  return p;
}

}  // namespace

TEST(Session, FeedbackAddressesTakeMailFromAnyoneButNeverRelay) {
  Session s(feedback_policy());
  s.on_line("EHLO mx.isp.test");
  EXPECT_EQ(code(s.on_line("MAIL FROM:<>")), 250);
  EXPECT_EQ(code(s.on_line("RCPT TO:<b+GOODTOKEN@Bounces.Example.COM>")), 250);
  EXPECT_EQ(code(s.on_line("RCPT TO:<FBL@example.com>")), 250);
  // The same session cannot reach anyone else.
  const auto relay = s.on_line("RCPT TO:<victim@elsewhere.example>");
  EXPECT_EQ(code(relay), 554);
  EXPECT_EQ(enhanced(relay), "5.7.1");
  EXPECT_EQ(code(s.on_line("RCPT TO:<b+GOODTOKEN@elsewhere.example>")), 554);  // not our domain
  EXPECT_EQ(code(s.on_line("RCPT TO:<fbl@example.com.elsewhere.example>")), 554);
  EXPECT_EQ(s.envelope().recipients,
            (std::vector<std::string>{"b+GOODTOKEN@Bounces.Example.COM", "FBL@example.com"}));
  EXPECT_TRUE(s.envelope().feedback);
  EXPECT_EQ(s.data_limit(), 1048576u);  // 1 MB, not max_message_bytes
  EXPECT_EQ(code(s.on_line("DATA")), 354);
}

TEST(Session, AnInvalidVerpTokenIs550At5_1_1) {
  Session s(feedback_policy());
  s.on_line("EHLO mx.isp.test");
  s.on_line("MAIL FROM:<>");
  const auto bad = s.on_line("RCPT TO:<b+FORGED@bounces.example.com>");
  EXPECT_EQ(code(bad), 550);
  EXPECT_EQ(enhanced(bad), "5.1.1");
  EXPECT_EQ(code(s.on_line("RCPT TO:<b+@bounces.example.com>")), 554);  // no token: not a VERP address at all
  EXPECT_EQ(code(s.on_line("DATA")), 503);
}

TEST(Session, FeedbackMailDeclaredTooBigIsRefusedAtRcpt) {
  Session s(feedback_policy());
  s.on_line("EHLO mx.isp.test");
  s.on_line("MAIL FROM:<> SIZE=2000000");
  const auto r = s.on_line("RCPT TO:<fbl@example.com>");
  EXPECT_EQ(code(r), 552);
  EXPECT_EQ(enhanced(r), "5.3.4");
  s.on_line("RSET");
  s.on_line("MAIL FROM:<> SIZE=2000");
  EXPECT_EQ(code(s.on_line("RCPT TO:<fbl@example.com>")), 250);
}

TEST(Session, TrustedClientsMixFeedbackAndOrdinaryRecipients) {
  auto p = feedback_policy();
  p.client_trusted = true;
  Session s(p);
  s.on_line("EHLO app.test");
  s.on_line("MAIL FROM:<app@example.com>");
  EXPECT_EQ(code(s.on_line("RCPT TO:<someone@example.org>")), 250);
  EXPECT_FALSE(s.envelope().feedback);
  EXPECT_EQ(s.data_limit(), 50u * 1024 * 1024);
  EXPECT_EQ(code(s.on_line("RCPT TO:<fbl@example.com>")), 250);
  EXPECT_EQ(s.data_limit(), 1048576u);  // the whole message is held to the feedback limit
}
