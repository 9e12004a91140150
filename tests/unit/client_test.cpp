// client_test.cpp: the SMTP client's pure parts: replies, dot-stuffing,
// EHLO keywords, SES ids, per-recipient outcomes and the rate limit.
#include <gtest/gtest.h>

#include <random>

#include "unsubrelay/delivery/rate_limit.hpp"
#include "unsubrelay/delivery/upstream_result.hpp"
#include "unsubrelay/smtp/client_codec.hpp"

using namespace unsubrelay;
using namespace unsubrelay::smtp;
using delivery::DeliveryStatus;

namespace {

ServerReply r(int code, std::string text) { return ServerReply{code, {std::move(text)}}; }

}  // namespace

TEST(ReplyReader, MultiLineAndMalformed) {
  ReplyReader reader;
  EXPECT_EQ(reader.push("250-smtp.example"), ReplyReader::Status::more);
  EXPECT_EQ(reader.push("250-PIPELINING"), ReplyReader::Status::more);
  EXPECT_EQ(reader.push("250 SIZE 10485760"), ReplyReader::Status::complete);
  const auto reply = reader.take();
  EXPECT_EQ(reply.code, 250);
  EXPECT_EQ(reply.lines.size(), 3u);
  EXPECT_EQ(reply.text(), "250 smtp.example PIPELINING SIZE 10485760");
  EXPECT_EQ(reader.push("220"), ReplyReader::Status::complete);
  reader.take();
  EXPECT_EQ(reader.push("hello"), ReplyReader::Status::malformed);
  EXPECT_EQ(reader.push("250x"), ReplyReader::Status::malformed);
  EXPECT_EQ(reader.push("650 no"), ReplyReader::Status::malformed);
  EXPECT_EQ(reader.push("250-a"), ReplyReader::Status::more);
  EXPECT_EQ(reader.push("251 b"), ReplyReader::Status::malformed);  // codes must agree
}

TEST(DotStuff, StuffsAndNormalisesLineEnds) {
  EXPECT_EQ(dot_stuff("a\r\n.b\r\n"), "a\r\n..b\r\n.\r\n");
  EXPECT_EQ(dot_stuff(".\r\n"), "..\r\n.\r\n");
  EXPECT_EQ(dot_stuff("no final newline"), "no final newline\r\n.\r\n");
  EXPECT_EQ(dot_stuff("bare\nlf\rcr\r\n.x"), "bare\r\nlf\r\ncr\r\n..x\r\n.\r\n");
  EXPECT_EQ(dot_stuff(""), ".\r\n");
}

// The fast (memchr) version against the obvious byte-at-a-time one, on random
// mixes of dots, CR, LF and text.
TEST(DotStuff, MatchesTheByteAtATimeReference) {
  auto reference = [](std::string_view content) {
    std::string out;
    bool line_start = true;
    for (std::size_t i = 0; i < content.size(); ++i) {
      const char c = content[i];
      if (line_start && c == '.') out.push_back('.');
      if (c == '\r' || c == '\n') {
        if (c == '\r' && i + 1 < content.size() && content[i + 1] == '\n') ++i;
        out += "\r\n";
        line_start = true;
        continue;
      }
      out.push_back(c);
      line_start = false;
    }
    if (!line_start) out += "\r\n";
    return out + ".\r\n";
  };
  std::mt19937 rng(7);
  const std::string alphabet = "..\r\n\r\nab";
  for (int round = 0; round < 20000; ++round) {
    std::string input(rng() % 24, ' ');
    for (auto& c : input) c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(dot_stuff(input), reference(input)) << testing::PrintToString(input);
  }
}

TEST(Ehlo, Keywords) {
  const ServerReply reply{250, {"email-smtp.amazonaws.com", "8BITMIME", "STARTTLS", "AUTH PLAIN LOGIN", "SIZE 10485760",
                                "PIPELINING"}};
  const auto e = parse_ehlo(reply);
  EXPECT_TRUE(e.pipelining && e.starttls && e.eightbitmime && e.auth_plain && e.auth_login);
  EXPECT_EQ(e.size, std::optional<std::uint64_t>(10485760));
  const auto bare = parse_ehlo(ServerReply{250, {"host"}});
  EXPECT_FALSE(bare.pipelining || bare.starttls || bare.auth_plain);
  EXPECT_FALSE(bare.size);
  EXPECT_FALSE(parse_ehlo(ServerReply{250, {"host", "AUTH CRAM-MD5 PLAINX"}}).auth_plain);
}

TEST(Ses, MessageId) {
  EXPECT_EQ(ses_message_id(r(250, "Ok 0100018c2f4a6f2e-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901-000000")),
            "0100018c2f4a6f2e-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901-000000");
  EXPECT_EQ(ses_message_id(r(250, "2.0.0 Ok: queued as ABC")), "");
  EXPECT_EQ(ses_message_id(r(451, "Ok 123")), "");
  EXPECT_EQ(ses_message_id(r(250, "Ok <script>")), "");
}

TEST(UpstreamResult, PerRecipientOutcomes) {
  Transaction t;
  t.mail = r(250, "2.1.0 Ok");
  t.rcpt = {r(250, "Ok"), r(550, "5.1.1 no such user"), r(454, "Throttling failure")};
  t.data = r(354, "go ahead");
  t.done = r(250, "Ok 0100abc-000000");
  const auto res = delivery::results_of(t, 3, "relay", true);
  ASSERT_EQ(res.size(), 3u);
  EXPECT_EQ(res[0].status, DeliveryStatus::sent);
  EXPECT_EQ(res[0].upstream_id, "0100abc-000000");
  EXPECT_EQ(res[1].status, DeliveryStatus::bounced);
  EXPECT_EQ(res[1].reply, "550 5.1.1 no such user");
  EXPECT_EQ(res[2].status, DeliveryStatus::deferred);
}

TEST(UpstreamResult, FailuresAtEachStep) {
  Transaction lost;
  lost.failure = "lost connection with x";
  EXPECT_EQ(delivery::results_of(lost, 2, "x", false)[1].status, DeliveryStatus::deferred);

  Transaction mail_refused;
  mail_refused.mail = r(553, "5.7.1 sender refused");
  EXPECT_EQ(delivery::results_of(mail_refused, 1, "x", false)[0].status, DeliveryStatus::bounced);

  Transaction no_final;  // the dot went out, no answer came: deferred, never bounced
  no_final.mail = r(250, "Ok");
  no_final.rcpt = {r(250, "Ok")};
  no_final.data = r(354, "go");
  no_final.failure = "timeout";
  EXPECT_EQ(delivery::results_of(no_final, 1, "x", false)[0].status, DeliveryStatus::deferred);

  Transaction data_refused;
  data_refused.mail = r(250, "Ok");
  data_refused.rcpt = {r(250, "Ok")};
  data_refused.data = r(554, "5.5.1 no");
  EXPECT_EQ(delivery::results_of(data_refused, 1, "x", false)[0].status, DeliveryStatus::bounced);
}

TEST(RateLimit, BurstThenPaced) {
  delivery::RateLimit limit(4, 4);
  const auto t0 = delivery::RateLimit::Clock::now();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(limit.take(t0), delivery::RateLimit::Clock::duration::zero());
  const auto wait = limit.take(t0);
  EXPECT_NEAR(std::chrono::duration<double>(wait).count(), 0.25, 0.01);
  EXPECT_EQ(limit.take(t0 + std::chrono::milliseconds(250)), delivery::RateLimit::Clock::duration::zero());
  delivery::RateLimit unlimited(0, 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(unlimited.take(t0), delivery::RateLimit::Clock::duration::zero());
}

TEST(ClientCodec, EightBitIsFoundAtAnyPosition) {
  EXPECT_FALSE(unsubrelay::smtp::has_8bit(""));
  EXPECT_FALSE(unsubrelay::smtp::has_8bit(std::string(100, 'a')));
  for (std::size_t at = 0; at < 20; ++at) {
    std::string s(20, 'a');
    s[at] = static_cast<char>(0xC3);
    EXPECT_TRUE(unsubrelay::smtp::has_8bit(s)) << at;
  }
}

TEST(ClientCodec, ContentNeedingNoStuffingIsExactlyWhatDotStuffLeavesAlone) {
  for (const std::string c : {"a\r\nb\r\n", "", "a", "a\r\n", ".a\r\n", "a\r\n.b\r\n", "a\nb\r\n", "a\rb\r\n",
                              "a\r\n\r\n", "a\r\nb", "a\r\n..\r\n", "\r\n", "a\r\r\n", "x.y\r\n"}) {
    const bool unchanged = dot_stuff(c) == c + ".\r\n";
    EXPECT_EQ(needs_stuffing(c), !unchanged) << testing::PrintToString(c);
  }
}
