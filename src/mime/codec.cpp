// codec.cpp: quoted-printable and base64, CRLF only.
#include "unsubrelay/mime/codec.hpp"

#include <array>

namespace unsubrelay::mime {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

constexpr char hex_digits[] = "0123456789ABCDEF";
constexpr std::size_t qp_line = 76;

}  // namespace

std::string qp_decode(std::string_view in) {
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

void qp_encode(std::string_view text, std::string& out, bool soft_break_at_end) {
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

std::optional<std::string> base64_decode(std::string_view in) {
  static const std::array<int, 256> table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
    return t;
  }();
  std::string out;
  out.reserve(in.size() / 4 * 3);
  unsigned buffer = 0;
  int bits = 0;
  std::size_t pads = 0;
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t') continue;
    if (c == '=') {
      ++pads;
      continue;
    }
    if (pads > 0 || table[c] < 0) return std::nullopt;  // data after padding, or not base64
    buffer = (buffer << 6) | static_cast<unsigned>(table[c]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (pads > 2) return std::nullopt;
  return out;
}

void base64_encode(std::string_view bytes, std::string& out) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t col = 0;
  auto put = [&](char c) {
    out.push_back(c);
    if (++col == 76) {
      out += "\r\n";
      col = 0;
    }
  };
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    put(alphabet[(v >> 18) & 63]);
    put(alphabet[(v >> 12) & 63]);
    put(alphabet[(v >> 6) & 63]);
    put(alphabet[v & 63]);
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (two ? static_cast<unsigned char>(bytes[i + 1]) << 8 : 0u);
    put(alphabet[(v >> 18) & 63]);
    put(alphabet[(v >> 12) & 63]);
    put(two ? alphabet[(v >> 6) & 63] : '=');
    put('=');
  }
  if (col > 0) out += "\r\n";
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace unsubrelay::mime
