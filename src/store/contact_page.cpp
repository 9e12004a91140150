// contact_page.cpp: the cursor of a contact's pages (contact_page.hpp).
#include "unsubrelay/store/contact_page.hpp"

#include <charconv>
#include <vector>

#include "cursor.hpp"

namespace unsubrelay::store {

namespace {

constexpr std::string_view version = "c1";

std::optional<long long> number(const std::string& text) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

ContactPage finish_page(ContactRecord read, const std::vector<long long>& feedback_ids,
                        const ContactPageQuery& query) {
  ContactPageQuery next = query;
  bool more = false;
  const auto keep = [&](auto& rows) {
    if (rows.size() > query.limit) {
      rows.resize(query.limit);
      more = true;
    }
  };
  keep(read.sends);
  keep(read.events);
  keep(read.feedback);
  // Each list resumes after its last row shown; a list at its end keeps its key.
  if (!read.sends.empty()) next.after_send = read.sends.back().launch_list_id;
  if (!read.events.empty()) next.after_event = read.events.back().id;
  if (!read.feedback.empty()) next.after_feedback = feedback_ids.at(read.feedback.size() - 1);
  ContactPage out{std::move(read), ""};
  if (more) out.next_cursor = encode_contact_cursor(next);
  return out;
}

std::string encode_contact_cursor(const ContactPageQuery& next) {
  return cursor::encode({std::string(version), next.after_send, std::to_string(next.after_event),
                         std::to_string(next.after_feedback)});
}

std::optional<ContactPageQuery> decode_contact_cursor(std::string_view cursor) {
  const auto fields = cursor::decode(cursor, 4);
  if (!fields || (*fields)[0] != version) return std::nullopt;
  const auto& parts = *fields;
  const auto event = number(parts[2]), feedback = number(parts[3]);
  if (!event || !feedback) return std::nullopt;
  ContactPageQuery q;
  q.first = false;
  q.after_send = parts[1];
  q.after_event = *event;
  q.after_feedback = *feedback;
  return q;
}

}  // namespace unsubrelay::store
