// import.hpp: the suppression-list import parser, pure and streaming.
//
// Reads the opt-out lists operators bring from other systems, pushed in
// chunks of any size (a file read, an HTTP body as it arrives):
//   - CSV with a header row whose address column is email, address or
//     EmailAddress (optional reason, topic, created columns), RFC 4180
//     quoting, a UTF-8 byte order mark, CRLF or LF, ',' ';' or tab separated;
//   - JSON lines with the same keys;
//   - the JSON document `aws sesv2 list-suppressed-destinations` prints
//     ({"SuppressedDestinationSummaries": [{"EmailAddress", "Reason",
//     "LastUpdateTime"}, ...]}), scanned incrementally: one element at a time
//     is held, never the document.
// The format is recognised from the first bytes. Each good row and each bad
// row (with its line number and why) comes out as it is read; what cannot be
// read any further (no address column, binary data, a broken SES document)
// is a fatal error that names the line it stopped at. Memory is bounded by
// ImportLimits whatever the input (a record over max_line_bytes is skipped to
// the next line, as Postfix skips an over-long line).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::suppression {

/// Why an address is suppressed (SPEC Part 2, "Suppression list management").
enum class Reason { unsubscribe, complaint, hard_bounce, soft_bounce, manual, import };
const char* name(Reason r);
/// The names above, case-insensitively, and SES's BOUNCE and COMPLAINT.
std::optional<Reason> parse_reason(std::string_view text);

/// One address to suppress, as read.
struct ImportRow {
  std::size_t line = 0;      // where its record starts, 1-based
  std::string address;       // normalised (normalise_address)
  Reason reason = Reason::import;
  std::string topic;         // "" = every campaign
  long long created = 0;     // unix seconds; 0 = not given (the import time is used)
};

struct RowError {
  std::size_t line = 0;
  std::string message;
};

enum class Format { unknown, csv, json_lines, ses_json };
const char* name(Format f);

struct ImportLimits {
  std::size_t max_line_bytes = 1 << 20;       // a CSV record or JSON line; longer ones are skipped
  std::size_t max_element_bytes = 64 * 1024;  // one element of the SES document
};

/// What one push() produced; the caller drains it after each push.
struct ImportOutput {
  std::vector<ImportRow> rows;
  std::vector<RowError> errors;
};

class ImportParser {
 public:
  /// topics: the configured topic ids; a row naming another topic is an error.
  explicit ImportParser(std::vector<std::string> topics = {}, ImportLimits limits = {});
  ~ImportParser();
  ImportParser(ImportParser&&) noexcept;

  /// Feeds the next bytes. After a fatal error further input is ignored.
  void push(std::string_view bytes, ImportOutput& out);
  /// The input ended: flushes the last record, detects a truncated document.
  void finish(ImportOutput& out);

  Format format() const;
  /// Why reading stopped for good ("" while all is well); it names its line.
  const std::string& fatal() const;
  /// Lines read so far (the line the next byte belongs to).
  std::size_t line() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// An address as the store keys it: trimmed, the addr-spec of "Name <addr>",
/// ASCII lower case; nullopt (with why) when it is not a plausible mailbox.
std::optional<std::string> normalise_address(std::string_view text, std::string& why);

/// Unix seconds from digits (seconds, fractions allowed) or ISO 8601
/// (YYYY-MM-DD, with THH:MM[:SS[.fff]] and Z or +HH:MM, or a space for T).
std::optional<long long> parse_time(std::string_view text);

}  // namespace unsubrelay::suppression
