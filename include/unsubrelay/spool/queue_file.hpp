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
//   N <tenant id>\n                          (optional; absent = "default"; trailing
//                                            spaces: a slot filled in after DATA)
//   B 8BITMIME\n                             (optional)
//   S <envelope sender, empty for <>>\n
//   R <recipient>\n                          (one per recipient)
//   M\n
//   <message content, CRLF lines, dot-unstuffed>
//   END <content length, 20 digits>\n
//
// As Postfix's qmgr marks a recipient record done, a recipient's outcome is
// written into the file in place: its record's type byte R becomes D
// (delivered) or X (bounced, returned to the sender). One byte written over
// one byte: a crash leaves either the old or the new letter, never a torn
// record, and the end record still matches the file size.
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
  std::string tenant;  // SPEC Part 3; "" = the tenant "default" (and every file written before tenants)
  /// smtp.tenant_header: the tenant is named by the message's header, read
  /// after DATA; the N record is written as a slot of tenant_slot_width spaces
  /// that QueueWriter::set_tenant fills in before the commit's fsync.
  bool tenant_slot = false;
};

/// The width of the N record's value when it is filled in after DATA (tenant ids are 1-32 characters).
inline constexpr std::size_t tenant_slot_width = 32;

/// Per-recipient delivery state.
enum class RecipientStatus { pending, delivered, bounced };

/// The type byte of a recipient record in that state: R, D or X.
char recipient_mark(RecipientStatus status);

inline constexpr std::string_view queue_magic = "UNSUBRELAY-QUEUE 1\n";
inline constexpr std::size_t trailer_size = 25;  // "END " + 20 digits + "\n"

/// The records before the content, ending with "M\n"; offsets (optional)
/// receives where each recipient record's type byte is.
std::string encode_envelope(const QueueEnvelope& envelope, std::vector<std::uint64_t>* offsets = nullptr);
std::string encode_trailer(std::uint64_t content_length);

struct ParsedQueueFile {
  QueueEnvelope envelope;
  std::vector<RecipientStatus> marks;             // per recipient, from its record's type byte
  std::vector<std::uint64_t> recipient_offsets;   // per recipient: where that byte is in the file
  std::uint64_t content_offset = 0;
  std::uint64_t content_length = 0;
};

/// Parses the records at the head of a file and checks its trailer against
/// the file size. head must hold at least every record up to "M\n"; tail
/// the last trailer_size bytes. Returns nullopt and why on any damage.
std::optional<ParsedQueueFile> parse_queue_file(std::string_view head, std::string_view tail,
                                                std::uint64_t file_size, std::string* why);

/// Retry state, and the per-recipient state of spools written before the
/// marks were kept in place, in an append-only log beside the queue file.
struct DeliveryState {
  std::vector<RecipientStatus> recipients;
  unsigned attempts = 0;
  long long next_try = 0;  // unix seconds; 0 = now
  std::string last_reason;
};

/// Applies the lines of a state log ("D i t [upstream-id]", "B i t", "F attempts next reason")
/// over the recipients' marks (a log never makes a recipient pending again).
/// An incomplete last line (a crash mid-append) is ignored.
DeliveryState parse_state_log(std::string_view log, std::vector<RecipientStatus> marks);

}  // namespace unsubrelay::spool
