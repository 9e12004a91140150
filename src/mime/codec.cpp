// codec.cpp: quoted-printable and base64, CRLF only.
#include "unsubrelay/mime/codec.hpp"

#include <array>
#include <cctype>

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
  // Runs of ordinary characters are copied whole; only '=', CR and LF are
  // looked at one by one (byte-at-a-time, this was a hot spot per message).
  static constexpr auto special = [] {
    std::array<bool, 256> t{};
    t['='] = t['\r'] = t['\n'] = true;
    return t;
  }();
  std::string out;
  out.reserve(in.size());
  // Trailing white space that came in literally is padding (RFC 2045 §6.7
  // rule 3) and is removed at a hard line break; =20 and =09 are kept.
  std::size_t kept = 0;
  const std::size_t n = in.size();
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t run_end = i;
    while (run_end < n && !special[static_cast<unsigned char>(in[run_end])]) ++run_end;
    if (run_end > i) {
      out.append(in.data() + i, run_end - i);
      std::size_t last = run_end;  // one past the run's last character that is not white space
      while (last > i && (in[last - 1] == ' ' || in[last - 1] == '\t')) --last;
      if (last > i) kept = out.size() - (run_end - last);
      i = run_end;
      if (i == n) break;
    }
    const char c = in[i];
    if (c == '=') {
      // "=" + optional white space + line break: a soft line break.
      std::size_t j = i + 1;
      while (j < n && (in[j] == ' ' || in[j] == '\t')) ++j;
      if (j < n && (in[j] == '\r' || in[j] == '\n')) {
        if (in[j] == '\r' && j + 1 < n && in[j + 1] == '\n') ++j;
        // White space before the "=" is text, not padding: it stays even when
        // the next encoded line is empty or blank ("over the =\r\n\r\n").
        kept = out.size();
        i = j;
        continue;
      }
      if (j == n && j > i + 1) {
        i = j - 1;  // "=" and white space at the very end: soft break
        continue;
      }
      if (i + 2 < n && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
        out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
        kept = out.size();
        i += 2;
        continue;
      }
      out.push_back('=');  // malformed: keep literally
      kept = out.size();
      continue;
    }
    // CR or LF: a hard line break.
    out.resize(kept);
    if (c == '\r' && i + 1 < n && in[i + 1] == '\n') ++i;
    out += "\r\n";
    kept = out.size();
  }
  return out;
}

void qp_encode(std::string_view text, std::string& out, bool soft_break_at_end) {
  // Written through a pointer into room reserved for the worst case (every
  // byte "=XX", plus soft breaks), then trimmed: no per-byte push_back.
  const std::size_t start = out.size();
  out.resize(start + text.size() * 3 + (text.size() * 3 / (qp_line - 4) + 2) * 3);  // each line holds >= 73
  char* const base = out.data() + start;
  char* w = base;
  std::size_t col = 0;
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool cr_next = i + 1 < n && text[i + 1] == '\r';
    if (c == '\r' && i + 1 < n && text[i + 1] == '\n') {
      *w++ = '\r';
      *w++ = '\n';
      col = 0;
      ++i;
      continue;
    }
    // White space must not end a line (RFC 2045 §6.7 rule 3); before a soft break it may stay.
    // Lines hold at most 76 characters: 75 and the "=" of a soft break, or 76
    // when this character ends a hard line (RFC 2045 §6.7 rule 5).
    const bool ends_hard_line = cr_next || (i + 1 == n && !soft_break_at_end);
    const bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !ends_hard_line);
    const std::size_t width = literal ? 1 : 3;
    if (col + width > (ends_hard_line ? qp_line : qp_line - 1)) {
      *w++ = '=';
      *w++ = '\r';
      *w++ = '\n';
      col = 0;
    }
    if (literal) {
      *w++ = static_cast<char>(c);
    } else {
      *w++ = '=';
      *w++ = hex_digits[c >> 4];
      *w++ = hex_digits[c & 15];
    }
    col += width;
  }
  if (soft_break_at_end && col > 0) {
    *w++ = '=';
    *w++ = '\r';
    *w++ = '\n';
  }
  out.resize(start + static_cast<std::size_t>(w - base));
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

bool readable_as_8bit(std::string_view encoding, std::string_view body) {
  std::string name;  // "7-bit" and "7_BIT" read as "7bit"
  for (char c : encoding) {
    if (std::isalnum(static_cast<unsigned char>(c))) name.push_back(static_cast<char>(std::tolower(c)));
  }
  for (std::string_view encoded : {"uu", "yenc", "64", "quoted", "qp", "zip", "zlib", "compress", "deflate", "binhex"}) {
    if (name.find(encoded) != std::string::npos) return false;
  }
  std::size_t line = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\0' || (c == '\r' && (i + 1 == body.size() || body[i + 1] != '\n'))) return false;
    line = c == '\n' ? 0 : line + (c == '\r' ? 0 : 1);  // the CR of a CRLF is not in the line
    if (line > 998) return false;
  }
  return true;
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
