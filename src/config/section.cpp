// section.cpp: the shared field helpers of the configuration loaders.
#include "section.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <boost/asio/ip/address.hpp>

namespace unsubrelay::config::detail {

int line_of(const YAML::Node& node) {
  const auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

bool is_integer(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::optional<Endpoint> parse_endpoint(const std::string& text) {
  Endpoint ep;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    ep.host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return std::nullopt;
    ep.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) return std::nullopt;
  boost::system::error_code aec;
  boost::asio::ip::make_address(ep.host, aec);
  if (aec) return std::nullopt;
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

void endpoints(Section& s, const char* key, std::vector<Endpoint>& out) {
  std::vector<std::string> texts;
  if (!s.present(key)) return;
  const auto node = s.raw(key);
  s.strings(key, texts);
  if (!node.IsSequence()) return;
  out.clear();
  for (std::size_t i = 0; i < texts.size() && i < node.size(); ++i) {
    if (auto ep = parse_endpoint(texts[i])) {
      out.push_back(*ep);
    } else {
      s.error(node[i], fmt::format("{}[{}]", s.path(key), i),
              fmt::format("'{}' is not host:port with a literal IP address ([::1]:2525 for IPv6)", texts[i]));
    }
  }
}

/// A list of CIDR networks; each bad entry is reported with its index.
void networks(Section& s, const char* key, std::vector<Network>& out) {
  if (!s.present(key)) return;
  std::vector<std::string> texts;
  const auto node = s.raw(key);
  s.strings(key, texts);
  out.clear();
  for (std::size_t i = 0; i < texts.size() && node.IsSequence(); ++i) {
    if (auto n = Network::parse(texts[i])) {
      out.push_back(*n);
    } else {
      s.error(node[i], fmt::format("{}[{}]", s.path(key), i),
              fmt::format("'{}' is not a CIDR network (10.0.0.0/8, ::1/128)", texts[i]));
    }
  }
}

/// A file the relay must read: it must exist and be readable now.
void readable_file(Section& s, const char* key, std::string& out) {
  s.string(key, out);
  if (out.empty() || !s.present(key)) return;
  if (::access(out.c_str(), R_OK) != 0) {
    s.error(s.raw(key), s.path(key), fmt::format("cannot read file '{}': {}", out, std::strerror(errno)));
  }
}

std::string default_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const auto c = static_cast<unsigned char>(d[i]);
    if (c == '.') {
      if (label == 0 || d[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(c) && c != '-') return false;
    if (label == 0 && c == '-') return false;
    if (++label > 63) return false;
  }
  return d.back() != '-';
}

std::string unreadable_whole(const std::string& path, std::uintmax_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return fmt::format("'{}' is not a regular file", path);
  // Not file_size(): /proc files say 0 and can be longer.
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("cannot open '{}'", path);
  char buf[8192];
  std::uintmax_t total = 0;
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    total += static_cast<std::uintmax_t>(in.gcount());
    if (total > max_bytes) return fmt::format("'{}' is larger than {} bytes", path, max_bytes);
  }
  return {};
}

}  // namespace unsubrelay::config::detail
