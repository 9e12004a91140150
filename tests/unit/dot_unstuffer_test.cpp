// dot_unstuffer_test.cpp: DATA decoding, end of data, smuggling forms, limits.
#include <gtest/gtest.h>

#include "unsubrelay/smtp/dot_unstuffer.hpp"

using unsubrelay::smtp::DotUnstuffer;

namespace {

struct Decoded {
  std::string content;
  std::size_t consumed = 0;
  bool done = false, bare = false, big = false, long_line = false, nul = false;
};

Decoded decode(std::string_view input, std::size_t step = 0, std::uint64_t max = 1 << 20, std::size_t line = 1000) {
  DotUnstuffer d({max, line});
  Decoded r;
  if (step == 0) step = input.size();
  while (r.consumed < input.size() && !d.done()) {
    const auto chunk = input.substr(r.consumed, step);
    r.consumed += d.feed(chunk, r.content);
  }
  r.done = d.done();
  r.bare = d.bare_newline();
  r.big = d.too_big();
  r.long_line = d.long_line();
  r.nul = d.nul_byte();
  return r;
}

}  // namespace

TEST(DotUnstuffer, EndsOnlyAtCrlfDotCrlfAndKeepsTheRest) {
  const std::string input = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
  for (std::size_t step : {0, 1, 2, 3, 7}) {
    const auto r = decode(input, step);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.content, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_EQ(input.substr(r.consumed), "QUIT\r\n") << "step " << step;
    EXPECT_FALSE(r.bare);
  }
}

TEST(DotUnstuffer, EmptyMessage) {
  const auto r = decode(".\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.content, "");
}

TEST(DotUnstuffer, RemovesStuffedDots) {
  const auto r = decode("..one\r\n...two\r\n.x\r\n.\r\n", 1);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.content, ".one\r\n..two\r\nx\r\n");
}

TEST(DotUnstuffer, SmugglingFormsNeverEndData) {
  for (const char* sep : {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\n.\r"}) {
    const std::string input = std::string("a") + sep + "MAIL FROM:<x@y.z>\r\n";
    for (std::size_t step : {0, 1}) {
      const auto r = decode(input, step);
      EXPECT_FALSE(r.done) << "separator " << testing::PrintToString(std::string(sep));
      EXPECT_TRUE(r.bare);
      EXPECT_EQ(r.consumed, input.size());
    }
  }
}

TEST(DotUnstuffer, BareCrOrLfAnywhereIsFlagged) {
  EXPECT_TRUE(decode("a\rb\r\n.\r\n").bare);
  EXPECT_TRUE(decode("a\nb\r\n.\r\n").bare);
  EXPECT_TRUE(decode("a\r\r\n.\r\n").bare);
  EXPECT_FALSE(decode("a\r\nb\r\n.\r\n").bare);
  const auto r = decode("x\n.\r\n.\r\n");  // <LF>.<CRLF> is content; the real end follows
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.bare);
}

TEST(DotUnstuffer, SizeLimitStopsStoringButFindsTheEnd) {
  const std::string input = std::string(100, 'x') + "\r\n" + std::string(100, 'y') + "\r\n.\r\n";
  const auto r = decode(input, 3, 50);
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.big);
  EXPECT_LE(r.content.size(), 50u);
}

TEST(DotUnstuffer, LineLengthCountsTheCrlf) {
  EXPECT_FALSE(decode(std::string(998, 'a') + "\r\n.\r\n").long_line);
  EXPECT_TRUE(decode(std::string(999, 'a') + "\r\n.\r\n").long_line);
  EXPECT_TRUE(decode(std::string(999, 'a') + "\r\n.\r\n", 10).long_line);
  EXPECT_FALSE(decode((std::string(500, 'a') + "\r\n") + std::string(500, 'b') + "\r\n.\r\n", 7).long_line);
}

TEST(DotUnstuffer, NulByteAnywhereIsFlagged) {
  // Issue 11: an upstream that strips NULs would see <CRLF>.<CRLF> in "<CRLF><NUL>.<CRLF>".
  using namespace std::string_literals;
  for (const std::string& input : {"a\r\n\0.\r\nb\r\n.\r\n"s, "\0x\r\n.\r\n"s, "a\0b\r\n.\r\n"s, ".\0\r\n.\r\n"s,
                                   "a\r\0\r\n.\r\n"s}) {
    for (std::size_t step : {0, 1, 2}) {
      const auto r = decode(input, step);
      EXPECT_TRUE(r.done) << testing::PrintToString(input);
      EXPECT_TRUE(r.nul) << testing::PrintToString(input) << " step " << step;
    }
  }
  EXPECT_FALSE(decode("a\r\nb\r\n.\r\n").nul);
}
