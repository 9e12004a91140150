// cursor.hpp: the opaque cursors of the paged store reads (the suppression
// list, a contact's page): their fields joined by a separator byte that none
// of them can hold, as lower-case hex, so a client sees one token it cannot
// read or build by hand, and a cursor this store did not make fails to decode.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::store::cursor {

constexpr char separator = '\x1f';
constexpr std::size_t max_chars = 2048;  // a longer cursor is none of ours

inline std::string encode(const std::vector<std::string>& fields) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto piece = i ? separator + fields[i] : fields[i];
    for (unsigned char c : piece) {
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

/// The fields of a cursor with exactly `count` of them; nullopt for anything else.
inline std::optional<std::vector<std::string>> decode(std::string_view text, std::size_t count) {
  if (text.empty() || text.size() % 2 || text.size() > max_chars) return std::nullopt;
  std::vector<std::string> fields(1);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data() + i, text.data() + i + 2, value, 16);
    if (ec != std::errc() || end != text.data() + i + 2) return std::nullopt;
    if (static_cast<char>(value) == separator) {
      fields.emplace_back();
    } else {
      fields.back() += static_cast<char>(value);
    }
  }
  if (fields.size() != count) return std::nullopt;
  return fields;
}

}  // namespace unsubrelay::store::cursor
