// suppression_list.cpp: the paging cursor of the suppression list (suppression_list.hpp).
#include "unsubrelay/store/suppression_list.hpp"

#include <charconv>

#include "cursor.hpp"

namespace unsubrelay::store {

std::string encode_cursor(const Suppression& last) {
  return cursor::encode({std::to_string(last.created), last.address, name(last.scope), last.scope_value});
}

std::optional<CursorKey> decode_cursor(std::string_view cursor) {
  const auto fields = cursor::decode(cursor, 4);
  if (!fields || (*fields)[0].empty()) return std::nullopt;
  const auto& parts = *fields;
  CursorKey key;
  const auto [end, ec] = std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), key.created);
  if (ec != std::errc() || end != parts[0].data() + parts[0].size()) return std::nullopt;
  key.address = parts[1];
  key.scope = parts[2];
  key.scope_value = parts[3];
  return key;
}

}  // namespace unsubrelay::store
