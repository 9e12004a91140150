// contact_page.hpp: GET /api/v1/contacts/ADDRESS a page at a time (issue 22
// point 8). A contact's sends, events and feedback grow with every campaign,
// so the API answers at most `limit` of each per page and a cursor to the
// next; the address, contact and suppression entries (few: one per campaign
// or topic at most) come on the first page. Keyset paging (sends by
// launch_list_id, events and feedback by id): rows added while a client pages
// never shift the pages, and a row is returned once.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/store/contact.hpp"

namespace unsubrelay::store {

constexpr std::size_t default_contact_page = 100;
constexpr std::size_t max_contact_page = 1000;

/// Where a page starts: after these keys (the previous page's last rows).
struct ContactPageQuery {
  std::size_t limit = default_contact_page;
  bool first = true;            // the first page (suppressions and nothing skipped)
  std::string after_send;       // launch_list_id of the last send returned
  long long after_event = 0;    // id of the last event returned
  long long after_feedback = 0; // id of the last feedback row returned
};

/// Every row at once (`unsubrelay contact show`, the erasure): the page read with no practical limit,
/// so the whole record and one page are read by the same statements.
inline ContactPageQuery every_row() {
  ContactPageQuery q;
  q.limit = std::size_t{1} << 40;
  return q;
}

struct ContactPage {
  ContactRecord record;     // at most limit sends, events and feedback rows
  std::string next_cursor;  // "" when every list is at its end
};

/// A page from what a store read: up to limit + 1 rows of each list after
/// the query's keys (feedback_ids: the feedback rows' ids, in order). Keeps
/// limit of each; next_cursor when any list had more.
ContactPage finish_page(ContactRecord read, const std::vector<long long>& feedback_ids, const ContactPageQuery& query);

/// The cursor of the page after `next` (its keys), opaque to clients (hex).
std::string encode_contact_cursor(const ContactPageQuery& next);
/// The keys of a cursor this API gave; nullopt for anything else.
std::optional<ContactPageQuery> decode_contact_cursor(std::string_view cursor);

}  // namespace unsubrelay::store
