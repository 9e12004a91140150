// queue_file.cpp: queue file and state log encoding.
#include "unsubrelay/spool/queue_file.hpp"

#include <charconv>

#include <fmt/format.h>

namespace unsubrelay::spool {

namespace {

// Envelope values come from parsed SMTP commands and never hold CR or LF;
// this keeps it so even if a caller passes something odd.
std::string one_line(std::string_view v) {
  std::string out(v);
  for (auto& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

template <typename Int>
bool to_int(std::string_view s, Int& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

char recipient_mark(RecipientStatus status) {
  switch (status) {
    case RecipientStatus::pending: return 'R';
    case RecipientStatus::delivered: return 'D';
    case RecipientStatus::bounced: return 'X';
  }
  return 'R';
}

std::string encode_envelope(const QueueEnvelope& e, std::vector<std::uint64_t>* offsets) {
  std::string out(queue_magic);
  out += fmt::format("T {}\nC {}\nH {}\n", e.arrival, one_line(e.client_address), one_line(e.helo));
  if (!e.auth_user.empty()) out += fmt::format("A {}\n", one_line(e.auth_user));
  if (e.tenant_slot) {
    out += fmt::format("N {:<{}}\n", one_line(e.tenant), tenant_slot_width);
  } else if (!e.tenant.empty()) {
    out += fmt::format("N {}\n", one_line(e.tenant));
  }
  if (e.body_8bit) out += "B 8BITMIME\n";
  out += fmt::format("S {}\n", one_line(e.sender));
  if (offsets) offsets->clear();
  for (const auto& r : e.recipients) {
    if (offsets) offsets->push_back(out.size());
    out += "R ";
    out += one_line(r);
    out += '\n';
  }
  out += "M\n";
  return out;
}

std::string encode_trailer(std::uint64_t content_length) { return fmt::format("END {:020}\n", content_length); }

std::optional<ParsedQueueFile> parse_queue_file(std::string_view head, std::string_view tail, std::uint64_t file_size,
                                                std::string* why) {
  auto fail = [&](const char* text) -> std::optional<ParsedQueueFile> {
    if (why) *why = text;
    return std::nullopt;
  };
  if (!head.starts_with(queue_magic)) return fail("bad magic: not a queue file");
  ParsedQueueFile q;
  std::size_t pos = queue_magic.size();
  bool have_arrival = false, have_sender = false, have_content = false;
  while (pos < head.size()) {
    const auto nl = head.find('\n', pos);
    if (nl == std::string_view::npos) return fail("truncated envelope records");
    const auto line = head.substr(pos, nl - pos);
    const auto line_offset = pos;
    pos = nl + 1;
    if (line == "M") {
      have_content = true;
      break;
    }
    if (line.size() < 2 || line[1] != ' ') return fail("malformed envelope record");
    const auto value = line.substr(2);
    switch (line[0]) {
      case 'T': have_arrival = to_int(value, q.envelope.arrival); break;
      case 'C': q.envelope.client_address = value; break;
      case 'H': q.envelope.helo = value; break;
      case 'A': q.envelope.auth_user = value; break;
      case 'N': q.envelope.tenant = value.substr(0, value.find_last_not_of(' ') + 1); break;
      case 'B': q.envelope.body_8bit = value == "8BITMIME"; break;
      case 'S': q.envelope.sender = value; have_sender = true; break;
      case 'R':
      case 'D':
      case 'X':
        q.envelope.recipients.emplace_back(value);
        q.marks.push_back(line[0] == 'R' ? RecipientStatus::pending
                          : line[0] == 'D' ? RecipientStatus::delivered
                                           : RecipientStatus::bounced);
        q.recipient_offsets.push_back(line_offset);
        break;
      default: return fail("unknown envelope record");
    }
  }
  if (!have_content || !have_arrival || !have_sender) return fail("missing envelope records");
  if (q.envelope.recipients.empty()) return fail("no recipients");
  q.content_offset = pos;
  if (file_size < q.content_offset + trailer_size || tail.size() != trailer_size) return fail("no end record");
  if (!tail.starts_with("END ") || tail.back() != '\n') return fail("no end record");
  std::uint64_t length = 0;
  if (!to_int(tail.substr(4, 20), length)) return fail("malformed end record");
  if (length != file_size - q.content_offset - trailer_size) return fail("end record does not match the file size");
  q.content_length = length;
  return q;
}

DeliveryState parse_state_log(std::string_view log, std::vector<RecipientStatus> marks) {
  DeliveryState s;
  const auto recipient_count = marks.size();
  s.recipients = std::move(marks);
  std::size_t pos = 0;
  while (pos < log.size()) {
    const auto nl = log.find('\n', pos);
    if (nl == std::string_view::npos) break;  // a crash mid-append: ignore the fragment
    const auto line = log.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.size() < 3 || line[1] != ' ') continue;
    const auto rest = line.substr(2);
    const auto sp = rest.find(' ');
    const auto first = rest.substr(0, sp);
    const auto after = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    if (line[0] == 'D' || line[0] == 'B') {
      std::size_t index = 0;
      if (to_int(first, index) && index < recipient_count) {
        s.recipients[index] = line[0] == 'D' ? RecipientStatus::delivered : RecipientStatus::bounced;
      }
    } else if (line[0] == 'F') {
      unsigned attempts = 0;
      long long next = 0;
      const auto sp2 = after.find(' ');
      if (to_int(first, attempts) && to_int(after.substr(0, sp2), next)) {
        s.attempts = attempts;
        s.next_try = next;
        s.last_reason = sp2 == std::string_view::npos ? std::string() : std::string(after.substr(sp2 + 1));
      }
    }
  }
  return s;
}

}  // namespace unsubrelay::spool
