// footer.cpp: the unsubscribe footer's text and the new part that carries it.
#include "footer.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_set>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::mime::footer {

namespace {

constexpr std::string_view plain_text = "To stop receiving these emails, unsubscribe: ";
constexpr std::string_view part_header =
    "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
    "Content-Disposition: inline\r\n\r\n";

}  // namespace

std::size_t html_at(std::string_view text) {
  const auto body_close = to_lower(text).rfind("</body>");
  return body_close == std::string::npos ? text.size() : body_close;
}

Around plain(std::string_view text) {
  Around a;
  a.before = text.ends_with("\r\n") || text.empty() ? "\r\n" : "\r\n\r\n";
  a.before += plain_text;
  a.after = "\r\n";
  return a;
}

Around html() {
  return {"<p style=\"font-size:12px;color:#666666;text-align:center\">To stop receiving these emails, <a href=\"",
          "\">unsubscribe</a>.</p>\r\n"};
}

bool shown(const Part& part, const std::function<bool(const Part&)>& carries) {
  if (part.opaque || part.attachment || part.type == "message") return false;
  if (!part.is_multipart()) return carries(part);
  if (part.subtype == "related") return !part.children.empty() && shown(part.children.front(), carries);
  if (part.subtype != "alternative") {
    return std::any_of(part.children.begin(), part.children.end(), [&](const Part& c) { return shown(c, carries); });
  }
  // Which alternative a reader picks depends on the reader (HTML or not), so every one it could pick.
  bool any = false;
  for (const auto& c : part.children) {
    if (c.attachment || !(c.is_multipart() || (c.is_text() && (c.subtype == "plain" || c.subtype == "html")))) continue;
    if (!shown(c, carries)) return false;
    any = true;
  }
  return any;
}

NewPart new_part_for(const Part& root) {
  if (root.is_multipart() && root.subtype == "mixed" && !root.opaque && !root.children.empty()) return NewPart::insert;
  return NewPart::wrap;
}

std::string unique_boundary(std::string_view message) {
  // The prefix and more digits than follow any occurrence of it in the message:
  // that string occurs nowhere in it, so no line of the message can be its
  // delimiter. One pass, however many look-alikes a sender puts in (trying
  // _0, _1, ... in turn was quadratic in them).
  constexpr std::string_view prefix = "=_unsubrelay_footer_";
  // RFC 2046 allows 70 characters: past this many digits, a fixed-width form (below).
  constexpr std::size_t max_digits = 40, hex_width = 8;
  std::size_t longest = 0;
  std::unordered_set<std::string_view> taken;  // the fixed-width forms the message holds
  for (auto at = message.find(prefix); at != std::string_view::npos; at = message.find(prefix, at + 1)) {
    const auto tail = at + prefix.size();
    std::size_t digits = 0;
    for (auto i = tail; i < message.size() && message[i] >= '0' && message[i] <= '9'; ++i) ++digits;
    longest = std::max(longest, digits);
    if (tail + 1 + hex_width <= message.size() && message[tail] == 'x') taken.insert(message.substr(tail + 1, hex_width));
  }
  if (longest < max_digits) return std::string(prefix) + std::string(longest + 1, '0');
  // A message with a 40-digit look-alike (subscriber data can put one in a copy): the first
  // "x" + 8 hex digits it does not hold. It holds fewer than 16^8 of them, so one exists.
  for (std::uint32_t n = 0;; ++n) {
    auto candidate = fmt::format("{:08x}", n);
    if (!taken.contains(candidate)) return fmt::format("{}x{}", prefix, candidate);
  }
}

Around inserted_part(const Part& root) {
  Around a;
  a.before = fmt::format("\r\n--{}\r\n{}{}", root.boundary, part_header, plain_text);
  a.after = root.closed ? "\r\n" : fmt::format("\r\n\r\n--{}--\r\n", root.boundary);
  return a;
}

std::string wrap_content_type(const std::string& boundary) {
  return fmt::format("Content-Type: multipart/mixed; boundary=\"{}\"\r\n", boundary);
}

Around wrapped_part(const std::string& boundary) {
  return {fmt::format("\r\n--{}\r\n{}{}", boundary, part_header, plain_text),
          fmt::format("\r\n\r\n--{}--\r\n", boundary)};
}

std::string closing_of_wrapped(const Part& root) {
  if (!root.is_multipart() || root.opaque || root.closed) return {};
  return fmt::format("\r\n--{}--", root.boundary);
}

bool content_field(std::string_view name) { return istarts_with(name, "Content-"); }

}  // namespace unsubrelay::mime::footer
