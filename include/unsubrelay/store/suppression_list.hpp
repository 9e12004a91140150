// suppression_list.hpp: managing the suppression list (issue 13): paging
// through it, adding entries by hand or by import, lifting them.
//
// Every change is recorded twice in one transaction: in the suppressions
// table (suppression.hpp, the one source of truth for "do not send") and as
// an event (events table, with the change's source and topic), so `export`
// and webhooks carry it like any unsubscribe. An entry that is already active
// is renewed silently: running the same import twice records nothing new.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/store/suppression.hpp"

namespace unsubrelay::store {

/// Which active entries to list: one address's, or every entry created at or
/// after `since`, oldest first, `limit` at a time, resuming after `cursor`.
struct SuppressionQuery {
  std::string address;  // set: this address's entries only (no paging)
  long long since = 0;
  std::string cursor;   // "" = from the start; else the previous page's next_cursor
  std::size_t limit = 100;
};

struct SuppressionPage {
  std::vector<Suppression> entries;
  std::string next_cursor;  // "" on the last page
};

/// The position after an entry, opaque to clients (hex of created, address,
/// scope and scope value: keyset paging that survives inserts).
std::string encode_cursor(const Suppression& last);
struct CursorKey {
  long long created = 0;
  std::string address, scope, scope_value;
};
std::optional<CursorKey> decode_cursor(std::string_view cursor);

/// Bounds of one management call.
constexpr std::size_t max_page_limit = 1000;
constexpr std::size_t import_batch_rows = 50000;  // rows per transaction

}  // namespace unsubrelay::store
