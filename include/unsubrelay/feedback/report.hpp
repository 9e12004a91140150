// report.hpp: what the DSN and ARF parsers share: byte ranges into the
// message as spooled, the named bounds of report parsing, and the field
// blocks of message/delivery-status and message/feedback-report bodies.
//
// Reports are read with the project's own MIME scanner (mime/scanner.hpp):
// this component never splits MIME itself. A report is untrusted input from
// anyone on the Internet, so every loop here is bounded by a named limit and
// an over-limit report is reported (notes), never a crash or unbounded work.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::feedback {

/// [begin, end) in the message given to the parser.
struct ByteRange {
  std::size_t begin = 0;
  std::size_t end = 0;

  bool empty() const { return end <= begin; }
  std::size_t size() const { return empty() ? 0 : end - begin; }
  std::string_view of(std::string_view message) const {
    return empty() || end > message.size() ? std::string_view() : message.substr(begin, end - begin);
  }
};

struct ReportLimits {
  std::size_t max_parts = 1000;            // MIME parts scanned (mime::ScanLimits::max_parts)
  std::size_t max_depth = 20;              // multipart nesting
  std::size_t max_header_bytes = 256 * 1024;  // one part's header block
  std::size_t max_fields = 2000;           // fields read from one status/feedback block
  std::size_t max_field_bytes = 16 * 1024; // one field's unfolded value; longer values are cut
  std::size_t max_recipients = 1000;       // per-recipient groups kept from one DSN
  std::size_t max_status_bytes = 1024 * 1024;  // a decoded delivery-status/feedback-report body
};

/// One "Name: value" field of a status or feedback block (RFC 3464 §2.1,
/// RFC 5965 §3.1): unfolded, value trimmed; the name as written.
struct ReportField {
  std::string name;
  std::string value;
};

/// A run of fields ended by a blank line (RFC 3464 §2: per-message fields,
/// then one group per recipient).
using FieldGroup = std::vector<ReportField>;

/// Splits a status or feedback body into blank-line separated groups of
/// fields. Lenient as real reports need: CRLF or bare LF, folded lines
/// (space or tab), names in any case, lines without a colon skipped. Values
/// over limits.max_field_bytes are cut; at most limits.max_fields fields.
std::vector<FieldGroup> parse_field_groups(std::string_view body, const ReportLimits& limits,
                                           std::vector<std::string>& notes);

/// The value of a field in a group (first occurrence, name case-insensitive), "" when absent.
std::string_view group_value(const FieldGroup& group, std::string_view name);

/// "rfc822; user@example.com" → "user@example.com": drops the address type
/// (RFC 3464 §2.1.2), angle brackets and white space; for "utf-8" addresses
/// (RFC 6533 §3) decodes \x{HEX} escapes to UTF-8.
std::string typed_address(std::string_view value);

}  // namespace unsubrelay::feedback
