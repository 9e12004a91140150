// report.cpp: field blocks of status and feedback bodies (RFC 3464 §2.1,
// RFC 5965 §3.1), typed addresses (RFC 3464 §2.1.2, RFC 6533 §3).
#include "unsubrelay/feedback/report.hpp"

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {

/// One line at pos (without its CRLF or LF) and where the next starts.
std::pair<std::string_view, std::size_t> next_line(std::string_view text, std::size_t pos) {
  const auto nl = text.find('\n', pos);
  const std::size_t stop = nl == std::string_view::npos ? text.size() : nl;
  auto line = text.substr(pos, stop - pos);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return {line, nl == std::string_view::npos ? text.size() : nl + 1};
}

bool blank(std::string_view line) { return trim(line).empty(); }

void append_cut(std::string& value, std::string_view more, std::size_t max_bytes) {
  if (value.size() >= max_bytes) return;
  value.append(more.substr(0, max_bytes - value.size()));
}

/// Appends one hex-coded code point as UTF-8 (RFC 6533's \x{HEX}); false when not valid.
bool append_utf8(std::string& out, unsigned long cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return true;
}

/// Decodes RFC 6533's embedded-unicode \x{HEX} escapes; anything else is kept.
std::string decode_utf8_address(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.substr(i, 3) == "\\x{") {
      const auto close = text.find('}', i + 3);
      if (close != std::string_view::npos && close - (i + 3) >= 1 && close - (i + 3) <= 6) {
        unsigned long cp = 0;
        bool hex = true;
        for (char c : text.substr(i + 3, close - (i + 3))) {
          const int d = (c >= '0' && c <= '9') ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
          if (d < 0) hex = false;
          cp = cp * 16 + static_cast<unsigned long>(d < 0 ? 0 : d);
        }
        if (hex && append_utf8(out, cp)) {
          i = close;
          continue;
        }
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace

std::vector<FieldGroup> parse_field_groups(std::string_view body, const ReportLimits& limits,
                                           std::vector<std::string>& notes) {
  std::vector<FieldGroup> groups(1);
  std::size_t fields = 0;
  bool cut = false;
  for (std::size_t pos = 0; pos < body.size();) {
    const auto [line, next] = next_line(body, pos);
    pos = next;
    if (blank(line)) {
      if (!groups.back().empty()) groups.emplace_back();
      continue;
    }
    if ((line.front() == ' ' || line.front() == '\t')) {
      if (!groups.back().empty()) {  // a folded continuation (RFC 5322 §2.2.3)
        auto& value = groups.back().back().value;
        if (!value.empty()) append_cut(value, " ", limits.max_field_bytes);
        append_cut(value, trim(line), limits.max_field_bytes);
        cut = cut || value.size() >= limits.max_field_bytes;
      }
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // not a field: skipped
    const auto name = trim(line.substr(0, colon));
    if (name.empty() || name.find(' ') != std::string_view::npos) continue;
    if (++fields > limits.max_fields) {
      notes.push_back(fmt::format("more than {} report fields; the rest ignored", limits.max_fields));
      break;
    }
    ReportField field{std::string(name), {}};
    append_cut(field.value, trim(line.substr(colon + 1)), limits.max_field_bytes);
    cut = cut || field.value.size() >= limits.max_field_bytes;
    groups.back().push_back(std::move(field));
  }
  if (groups.back().empty()) groups.pop_back();
  if (cut) notes.push_back(fmt::format("a report field over {} bytes was cut", limits.max_field_bytes));
  return groups;
}

std::string_view group_value(const FieldGroup& group, std::string_view name) {
  for (const auto& f : group) {
    if (iequals(f.name, name)) return f.value;
  }
  return {};
}

std::string typed_address(std::string_view value) {
  value = trim(value);
  bool utf8 = false;
  if (const auto semi = value.find(';'); semi != std::string_view::npos) {
    const auto type = trim(value.substr(0, semi));
    // An address type is an atom ("rfc822", "utf-8", "x400"); a ';' later on is the address's own.
    if (!type.empty() && type.find_first_of("@<> \"") == std::string_view::npos) {
      utf8 = iequals(type, "utf-8");
      value = trim(value.substr(semi + 1));
    }
  }
  if (const auto open = value.find('<'); open != std::string_view::npos) {
    const auto close = value.find('>', open);
    value = value.substr(open + 1, close == std::string_view::npos ? std::string_view::npos : close - open - 1);
  }
  value = trim(value);
  return utf8 ? decode_utf8_address(value) : std::string(value);
}

}  // namespace unsubrelay::feedback
