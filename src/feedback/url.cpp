// url.cpp: the https URLs an SNS message may make us fetch, and the allow-list.
//
// Deliberately narrower than RFC 3986: what AWS sends parses, and whatever
// could make two programs disagree on the host (userinfo, backslashes,
// percent-encoded dots or slashes, white space) is refused outright.
#include "unsubrelay/feedback/sns.hpp"

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {

bool forbidden_byte(unsigned char c) { return c <= 0x20 || c >= 0x7f || c == '\\' || c == '#'; }

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value >= 1 && value <= 65535;
}

/// Splits authority into host and port; false when either is malformed.
bool split_authority(std::string_view authority, HttpsUrl& u) {
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {  // an IPv6 literal
    const auto close = authority.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    host = authority.substr(1, close - 1);
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) return false;
    const auto rest = authority.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || rest.size() == 1)) return false;
    if (!rest.empty()) port = rest.substr(1);
  } else {
    if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty() || host.front() == '.' || host.front() == '-') return false;
    for (char c : host) {
      if (!host_char(c)) return false;
    }
  }
  if (!port.empty() && !valid_port(port)) return false;
  u.host = to_lower(host);
  u.port = port.empty() ? "443" : std::string(port);
  return !u.host.empty();
}

/// No "." or ".." segment, plain or percent-encoded, and no encoded slash.
bool safe_path(std::string_view path) {
  const auto lower = to_lower(path);
  if (lower.find("%2e") != std::string::npos || lower.find("%2f") != std::string::npos ||
      lower.find("%5c") != std::string::npos)
    return false;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const auto slash = path.find('/', pos);
    const auto segment = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (segment == "." || segment == "..") return false;
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return true;
}

}  // namespace

std::optional<HttpsUrl> parse_https_url(std::string_view url) {
  constexpr std::string_view scheme = "https://";
  if (!url.starts_with(scheme) || url.size() > 2048) return std::nullopt;
  for (unsigned char c : url) {
    if (forbidden_byte(c)) return std::nullopt;
  }
  const auto rest = url.substr(scheme.size());
  const auto end_of_authority = rest.find_first_of("/?");
  const auto authority = rest.substr(0, end_of_authority);
  if (authority.find('@') != std::string_view::npos) return std::nullopt;  // userinfo
  HttpsUrl u;
  if (!split_authority(authority, u)) return std::nullopt;
  std::string_view target = end_of_authority == std::string_view::npos ? std::string_view() : rest.substr(end_of_authority);
  u.target = target.empty() ? "/" : target.front() == '?' ? "/" + std::string(target) : std::string(target);
  if (!safe_path(std::string_view(u.target).substr(0, u.target.find('?')))) return std::nullopt;
  return u;
}

bool url_allowed(std::string_view url, const std::vector<std::string>& prefixes) {
  const auto u = parse_https_url(url);
  if (!u) return false;
  for (const auto& prefix : prefixes) {
    const auto p = parse_https_url(prefix);
    if (!p) continue;
    if (p->host == u->host && p->port == u->port && u->target.starts_with(p->target)) return true;
  }
  return false;
}

}  // namespace unsubrelay::feedback
