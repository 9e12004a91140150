// queue_file.hpp: the queue file format, pure encode and decode.
//
// Like Postfix's queue files, a message is typed records ending in a
// required end record; a file without a valid end record was never
// acknowledged (or was damaged) and is quarantined, never sent:
//
//   UNSUBRELAY-QUEUE 1\n
//   T <arrival, unix seconds>\n
//   C <client address>\n
//   H <HELO name, escaped>\n
//   A <authenticated user, escaped>\n        (optional)
//   B 8BITMIME\n                             (optional)
//   S <envelope sender, empty for <>>\n
//   R <recipient>\n                          (one per recipient)
//   M\n
//   <message content, CRLF lines, dot-unstuffed>
//   END <content length, 20 digits>\n
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::spool {

struct QueueEnvelope {
  long long arrival = 0;
  std::string client_address;
  std::string helo;
  std::string auth_user;
  bool body_8bit = false;
  std::string sender;
  std::vector<std::string> recipients;
};

inline constexpr std::string_view queue_magic = "UNSUBRELAY-QUEUE 1\n";
inline constexpr std::size_t trailer_size = 25;  // "END " + 20 digits + "\n"

/// The records before the content, ending with "M\n".
std::string encode_envelope(const QueueEnvelope& envelope);
std::string encode_trailer(std::uint64_t content_length);

struct ParsedQueueFile {
  QueueEnvelope envelope;
  std::uint64_t content_offset = 0;
  std::uint64_t content_length = 0;
};

/// Parses the records at the head of a file and checks its trailer against
/// the file size. head must hold at least every record up to "M\n"; tail
/// the last trailer_size bytes. Returns nullopt and why on any damage.
std::optional<ParsedQueueFile> parse_queue_file(std::string_view head, std::string_view tail,
                                                std::uint64_t file_size, std::string* why);

/// Per-recipient delivery state, kept in an append-only log beside the
/// queue file so a restart never resends to recipients already delivered.
enum class RecipientStatus { pending, delivered, bounced };

struct DeliveryState {
  std::vector<RecipientStatus> recipients;
  unsigned attempts = 0;
  long long next_try = 0;  // unix seconds; 0 = now
  std::string last_reason;
};

/// Applies the lines of a state log ("D i t [upstream-id]", "B i t", "F attempts next reason").
/// An incomplete last line (a crash mid-append) is ignored.
DeliveryState parse_state_log(std::string_view log, std::size_t recipient_count);

}  // namespace unsubrelay::spool
