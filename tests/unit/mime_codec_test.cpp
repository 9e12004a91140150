// mime_codec_test.cpp: quoted-printable and base64 round trips and line rules.
#include <gtest/gtest.h>

#include <random>

#include "unsubrelay/mime/codec.hpp"

using namespace unsubrelay::mime;

namespace {

void expect_valid_qp(const std::string& encoded) {
  std::size_t start = 0;
  while (start < encoded.size()) {
    auto nl = encoded.find("\r\n", start);
    if (nl == std::string::npos) nl = encoded.size();
    const auto line = encoded.substr(start, nl - start);
    EXPECT_LE(line.size(), 76u) << line;
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      EXPECT_TRUE((u >= 32 && u <= 126) || u == '\t') << "byte " << int(u);
    }
    if (!line.empty()) {
      EXPECT_NE(line.back(), ' ') << "white space at a line end";
    }
    start = nl + 2;
  }
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '\n') {
      ASSERT_TRUE(i > 0 && encoded[i - 1] == '\r');
    }
    if (encoded[i] == '\r') {
      ASSERT_TRUE(i + 1 < encoded.size() && encoded[i + 1] == '\n');
    }
  }
}

}  // namespace

TEST(QuotedPrintable, DecodesSoftBreaksAndHex) {
  EXPECT_EQ(qp_decode("*|UNSUB=\r\nSCRIBE|*"), "*|UNSUBSCRIBE|*");
  EXPECT_EQ(qp_decode("=2A|UNSUBSCRIBE|=2a"), "*|UNSUBSCRIBE|*");
  EXPECT_EQ(qp_decode("caf=C3=A9  \r\nx"), "caf\xc3\xa9\r\nx");
  EXPECT_EQ(qp_decode("soft=  \r\nbreak"), "softbreak");
  EXPECT_EQ(qp_decode("bad =ZZ and = end"), "bad =ZZ and = end");
  EXPECT_EQ(qp_decode("lf\nline"), "lf\r\nline");
}

TEST(QuotedPrintable, RandomRoundTripsStayValid) {
  std::mt19937 rng(1);
  for (int round = 0; round < 200; ++round) {
    std::string text;
    const int lines = rng() % 6;
    for (int l = 0; l < lines; ++l) {
      const int len = rng() % 200;
      for (int i = 0; i < len; ++i) {
        const int kind = rng() % 10;
        text.push_back(kind < 6 ? static_cast<char>('a' + rng() % 26)
                       : kind < 8 ? ' '
                       : kind < 9 ? '='
                                  : static_cast<char>(0x80 + rng() % 128));
      }
      text += "\r\n";
    }
    if (rng() % 2) text += "tail ";
    for (bool soft : {false, true}) {
      std::string encoded;
      qp_encode(text, encoded, soft);
      expect_valid_qp(encoded);
      EXPECT_EQ(qp_decode(encoded), text) << "round " << round;
    }
  }
}

TEST(Base64, RoundTripAndLines) {
  std::mt19937 rng(2);
  for (std::size_t n : {0, 1, 2, 3, 56, 57, 58, 1000}) {
    std::string bytes(n, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng());
    std::string encoded;
    base64_encode(bytes, encoded);
    std::size_t start = 0;
    while (start < encoded.size()) {
      const auto nl = encoded.find("\r\n", start);
      ASSERT_NE(nl, std::string::npos);
      EXPECT_LE(nl - start, 76u);
      start = nl + 2;
    }
    EXPECT_EQ(base64_decode(encoded), bytes);
  }
  EXPECT_FALSE(base64_decode("PGh0bWw+|||"));
  EXPECT_FALSE(base64_decode("QQ==QQ=="));
  EXPECT_EQ(base64_decode("SGVs\r\nbG8="), std::optional<std::string>("Hello"));
}

TEST(Html, Escape) { EXPECT_EQ(html_escape("a&b<c>\"'"), "a&amp;b&lt;c&gt;&quot;&#39;"); }
