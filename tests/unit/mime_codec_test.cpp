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

TEST(QuotedPrintable, WhiteSpaceBeforeASoftBreakIsKept) {
  // Issue 11 (mail-parser's mail_test_10): the space before "=" was dropped
  // when the next encoded line was empty or blank.
  EXPECT_EQ(qp_decode("over the =\r\n\r\nlazy dog"), "over the \r\nlazy dog");
  EXPECT_EQ(qp_decode("over the =\r\n   \r\nlazy dog"), "over the \r\nlazy dog");
  EXPECT_EQ(qp_decode("tab\t=\r\n\r\n"), "tab\t\r\n");
  EXPECT_EQ(qp_decode("over the =\n\nx"), "over the \r\nx");
  EXPECT_EQ(qp_decode("over the =\r\nlazy"), "over the lazy");
  // Padding at a hard break still goes, after a soft break too.
  EXPECT_EQ(qp_decode("a =\r\nb  \r\nc"), "a b\r\nc");
  // Round trip: format=flowed text whose lines end in a space.
  const std::string flowed = "a flowed line that ends in a space \r\n\r\nnext paragraph\r\n";
  for (bool soft : {false, true}) {
    std::string encoded;
    qp_encode(flowed, encoded, soft);
    EXPECT_EQ(qp_decode(encoded), flowed);
  }
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

// The run-copying codec against the byte-at-a-time one it replaced, on random
// mixes of the characters that matter (=, hex, white space, CR, LF, 8-bit).
namespace qp_reference {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
constexpr char hex_digits[] = "0123456789ABCDEF";
constexpr std::size_t qp_line = 76;
std::string reference_qp_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  // Trailing white space that came in literally is padding (RFC 2045 §6.7
  // rule 3) and is removed at a hard line break; =20 and =09 are kept.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '=') {
      // "=" + optional white space + line break: a soft line break.
      std::size_t j = i + 1;
      while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
      if (j < in.size() && (in[j] == '\r' || in[j] == '\n')) {
        if (in[j] == '\r' && j + 1 < in.size() && in[j + 1] == '\n') ++j;
        kept = out.size();
        i = j;
        continue;
      }
      if (j == in.size() && j > i + 1) {
        i = j - 1;  // "=" and white space at the very end: soft break
        continue;
      }
      if (i + 2 < in.size() && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
        out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
        kept = out.size();
        i += 2;
        continue;
      }
      out.push_back('=');  // malformed: keep literally
      kept = out.size();
      continue;
    }
    if (c == '\r' || c == '\n') {
      out.resize(kept);
      if (c == '\r' && i + 1 < in.size() && in[i + 1] == '\n') ++i;
      out += "\r\n";
      kept = out.size();
      continue;
    }
    out.push_back(c);
    if (c != ' ' && c != '\t') kept = out.size();
  }
  return out;
}

void reference_qp_encode(std::string_view text, std::string& out, bool soft_break_at_end) {
  std::size_t col = 0;
  auto soft_break = [&] {
    out += "=\r\n";
    col = 0;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      out += "\r\n";
      col = 0;
      ++i;
      continue;
    }
    // White space must not end a line (RFC 2045 §6.7 rule 3); before a soft break it may stay.
    const bool at_line_end = (i + 1 == text.size() && !soft_break_at_end) || (i + 1 < text.size() && text[i + 1] == '\r');
    const bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_line_end);
    const std::size_t width = literal ? 1 : 3;
    // Lines hold at most 76 characters: 75 and the "=" of a soft break, or 76
    // when this character ends a hard line (RFC 2045 §6.7 rule 5).
    const bool ends_hard_line = (i + 1 < text.size() && text[i + 1] == '\r') ||
                                (i + 1 == text.size() && !soft_break_at_end);
    if (col + width > (ends_hard_line ? qp_line : qp_line - 1)) soft_break();
    if (literal) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('=');
      out.push_back(hex_digits[c >> 4]);
      out.push_back(hex_digits[c & 15]);
    }
    col += width;
  }
  if (soft_break_at_end && col > 0) soft_break();
}

}  // namespace qp_reference

TEST(QuotedPrintable, MatchesTheByteAtATimeReference) {
  std::mt19937 rng(11);
  const std::string alphabet = "==AF3d  \t\t\r\n\r\nxyz.\xe9\x80";
  for (int round = 0; round < 20000; ++round) {
    std::string input(rng() % 200, ' ');
    for (auto& c : input) c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(qp_decode(input), qp_reference::reference_qp_decode(input)) << testing::PrintToString(input);
    for (bool soft : {false, true}) {
      std::string fast = "prefix", slow = "prefix";
      qp_encode(input, fast, soft);
      qp_reference::reference_qp_encode(input, slow, soft);
      ASSERT_EQ(fast, slow) << testing::PrintToString(input);
    }
  }
  // Worst case for the encoder's reserved room: every byte encoded.
  std::string all8bit(10000, '\xff');
  std::string fast, slow;
  qp_encode(all8bit, fast, true);
  qp_reference::reference_qp_encode(all8bit, slow, true);
  EXPECT_EQ(fast, slow);
}

// Issue 22: an unknown transfer encoding over plain lines is read as 8bit, as
// mail readers read it; names of encodings they undo, and bytes that are not
// plain lines, are not.
TEST(Codec, UnknownEncodingReadAs8bitOnlyOverPlainLines) {
  const std::string text = "Hello,\r\nthe newsletter.\r\n";
  for (const char* name : {"7-bit", "8-bit", "plain", "text/html", "spam", "7_BIT", "none"}) {
    EXPECT_TRUE(readable_as_8bit(name, text)) << name;
  }
  for (const char* name : {"x-uuencode", "uue", "x-yencode", "base-64", "quoted_printable", "x-gzip", "x-compress",
                           "mac-binhex40", "deflate"}) {
    EXPECT_FALSE(readable_as_8bit(name, text)) << name;
  }
  EXPECT_TRUE(readable_as_8bit("plain", "caf\xc3\xa9\nno CRLF\n"));
  EXPECT_TRUE(readable_as_8bit("plain", std::string(998, 'a') + "\r\n"));
  EXPECT_FALSE(readable_as_8bit("plain", std::string(999, 'a') + "\r\n"));
  EXPECT_FALSE(readable_as_8bit("plain", std::string("a\0b\r\n", 5)));
  EXPECT_FALSE(readable_as_8bit("plain", "a lone\rCR\r\n"));
}
