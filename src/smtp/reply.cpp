// reply.cpp: SMTP reply formatting.
#include "unsubrelay/smtp/reply.hpp"

#include <cassert>

#include <fmt/format.h>

namespace unsubrelay::smtp {

std::string Reply::wire() const {
  std::string out;
  const auto n = lines.empty() ? 1 : lines.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view text = lines.empty() ? std::string_view() : std::string_view(lines[i]);
    const char sep = (i + 1 == n) ? ' ' : '-';
    if (enhanced.empty()) {
      out += fmt::format("{}{}{}\r\n", code, sep, text);
    } else {
      out += fmt::format("{}{}{} {}\r\n", code, sep, enhanced, text);
    }
  }
  return out;
}

Reply reply(int code, std::string_view enhanced, std::string_view text) {
  assert(!enhanced.empty() && enhanced[0] - '0' == code / 100);
  return Reply{code, std::string(enhanced), {std::string(text)}};
}

Reply plain_reply(int code, std::string_view text) { return Reply{code, {}, {std::string(text)}}; }

}  // namespace unsubrelay::smtp
