// suppression_list.cpp: the paging cursor of the suppression list (suppression_list.hpp).
#include "unsubrelay/store/suppression_list.hpp"

#include <charconv>

namespace unsubrelay::store {

namespace {

constexpr char separator = '\x1f';  // never in an address, scope or topic id

}  // namespace

std::string encode_cursor(const Suppression& last) {
  const auto plain = std::to_string(last.created) + separator + last.address + separator +
                     name(last.scope) + separator + last.scope_value;
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(plain.size() * 2);
  for (unsigned char c : plain) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<CursorKey> decode_cursor(std::string_view cursor) {
  if (cursor.size() % 2 || cursor.size() > 2048) return std::nullopt;
  std::string plain;
  for (std::size_t i = 0; i < cursor.size(); i += 2) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(cursor.data() + i, cursor.data() + i + 2, value, 16);
    if (ec != std::errc() || end != cursor.data() + i + 2) return std::nullopt;
    plain += static_cast<char>(value);
  }
  std::vector<std::string> parts(1);
  for (char c : plain) {
    if (c == separator) {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  if (parts.size() != 4 || parts[0].empty()) return std::nullopt;
  CursorKey key;
  const auto [end, ec] = std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), key.created);
  if (ec != std::errc() || end != parts[0].data() + parts[0].size()) return std::nullopt;
  key.address = parts[1];
  key.scope = parts[2];
  key.scope_value = parts[3];
  return key;
}

}  // namespace unsubrelay::store
