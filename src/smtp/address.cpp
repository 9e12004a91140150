// address.cpp: envelope address syntax per RFC 5321 §4.1.2.
#include "unsubrelay/smtp/address.hpp"

#include <boost/asio/ip/address.hpp>

namespace unsubrelay::smtp {

namespace {

bool is_atext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
      return true;
    default:
      return false;
  }
}

bool fail(std::string* why, const char* text) {
  if (why) *why = text;
  return false;
}

bool valid_dot_string(std::string_view s, std::string* why) {
  if (s.empty()) return fail(why, "empty local part");
  for (char c : s) {
    if (c != '.' && !is_atext(c)) return fail(why, "invalid character in local part");
  }
  return true;
}

bool valid_quoted_string(std::string_view s, std::string* why) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return fail(why, "unterminated quoted local part");
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (i + 2 >= s.size()) return fail(why, "bad quoted pair in local part");
      const auto n = static_cast<unsigned char>(s[++i]);
      if (n < 32 || n > 126) return fail(why, "bad quoted pair in local part");
    } else if (c < 32 || c > 126 || c == '"') {
      return fail(why, "invalid character in quoted local part");
    }
  }
  return true;
}

bool valid_domain(std::string_view d, std::string* why) {
  if (d.empty()) return fail(why, "empty domain");
  if (d.size() > 255) return fail(why, "domain too long");
  if (d.front() == '[') {
    if (d.back() != ']') return fail(why, "unterminated address literal");
    auto inner = d.substr(1, d.size() - 2);
    if (inner.starts_with("IPv6:")) inner.remove_prefix(5);
    boost::system::error_code ec;
    boost::asio::ip::make_address(std::string(inner), ec);
    return ec ? fail(why, "invalid address literal") : true;
  }
  std::size_t label = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const char c = d[i];
    if (c == '.') {
      if (label == 0) return fail(why, "empty label in domain");
      if (d[i - 1] == '-') return fail(why, "domain label ends with '-'");
      label = 0;
      continue;
    }
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && label > 0)) return fail(why, "invalid character in domain");
    if (++label > 63) return fail(why, "domain label too long");
  }
  if (label == 0) return fail(why, "domain ends with '.'");
  return true;
}

}  // namespace

std::optional<Mailbox> parse_mailbox(std::string_view path, std::string* why) {
  // Source route: "@a,@b:mailbox". Drop it (RFC 5321 §4.1.1.3 MUST accept, SHOULD ignore).
  if (!path.empty() && path.front() == '@') {
    const auto colon = path.find(':');
    if (colon == std::string_view::npos) {
      fail(why, "bad source route");
      return std::nullopt;
    }
    std::size_t start = 0;
    while (start < colon) {
      const auto comma = path.substr(0, colon).find(',', start);
      const auto end = comma == std::string_view::npos ? colon : comma;
      const auto hop = path.substr(start, end - start);
      if (hop.size() < 2 || hop.front() != '@' || !valid_domain(hop.substr(1), why)) {
        fail(why, "bad source route");
        return std::nullopt;
      }
      start = end + 1;
    }
    path.remove_prefix(colon + 1);
  }
  if (path.size() > 256) {  // RFC 5321 §4.5.3.1.3 path limit
    fail(why, "address too long");
    return std::nullopt;
  }
  std::size_t at = std::string_view::npos;
  if (!path.empty() && path.front() == '"') {
    // The '@' that separates is the first one after the closing quote.
    std::size_t i = 1;
    for (; i < path.size(); ++i) {
      if (path[i] == '\\') {
        ++i;
      } else if (path[i] == '"') {
        break;
      }
    }
    at = i + 1 < path.size() && path[i + 1] == '@' ? i + 1 : std::string_view::npos;
  } else {
    at = path.rfind('@');
  }
  if (at == std::string_view::npos) {
    fail(why, "address has no domain");
    return std::nullopt;
  }
  Mailbox m{std::string(path.substr(0, at)), std::string(path.substr(at + 1))};
  // RFC 5321 §4.5.3.1.1 says 64, and §4.5.3.1 asks servers to accept more
  // where they can; Postfix does not enforce it, VERP addresses exceed it, and
  // so do our own u+TOKEN unsubscribe addresses. The whole path stays <= 256.
  if (m.local.size() > 200) {
    fail(why, "local part too long");
    return std::nullopt;
  }
  const bool local_ok = m.local.front() == '"' ? valid_quoted_string(m.local, why) : valid_dot_string(m.local, why);
  if (!local_ok || !valid_domain(m.domain, why)) return std::nullopt;
  return m;
}

}  // namespace unsubrelay::smtp
