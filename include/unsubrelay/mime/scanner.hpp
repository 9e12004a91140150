// scanner.hpp: a bounded MIME scanner that records byte ranges in the original.
//
// It never rebuilds anything: each part is a header range and a body range of
// the message as received, so whatever the rewrite does not touch is copied
// byte for byte. Work is linear in the message size for any input; named
// limits bound nesting, part count and header size, and a message beyond
// them is reported (and then forwarded unchanged), never a crash.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::mime {

struct ScanLimits {
  std::size_t max_depth = 20;            // multipart nesting
  std::size_t max_parts = 1000;
  std::size_t max_header_bytes = 256 * 1024;  // one part's header block
};

struct HeaderField {
  std::size_t begin = 0;  // start of the name
  std::size_t end = 0;    // after the CRLF of its last line
  std::string name;       // as written
  std::string value;      // unfolded, trimmed
};

struct Part {
  std::size_t begin = 0;       // start of the header
  std::size_t body_begin = 0;  // first byte of the body
  std::size_t end = 0;         // end of the body (before the delimiter's CRLF)
  std::vector<HeaderField> fields;
  std::string type = "text";   // lower case
  std::string subtype = "plain";
  std::string boundary;
  std::string charset;         // lower case, "" when absent
  std::string encoding = "7bit";  // lower case Content-Transfer-Encoding
  bool attachment = false;     // Content-Disposition: attachment
  bool opaque = false;         // not looked into (too deep, too many parts, broken)
  bool closed = false;         // multipart: its closing delimiter was found
  std::vector<Part> children;

  bool is_multipart() const { return type == "multipart"; }
  bool is_text() const { return type == "text"; }
};

struct ScanResult {
  Part root;
  bool ok = false;                 // false: forward the message unchanged
  std::vector<std::string> notes;  // what was odd, for the log (missing boundary, ...)
};

ScanResult scan(std::string_view message, const ScanLimits& limits = {});

/// True when the message's header (before its first empty line) has a field
/// of that name (any case). Cheap: no scan of the body.
bool has_header_field(std::string_view message, std::string_view name);

/// The message without any top-level header field of that name (any case,
/// folded lines included); nullopt when it has none, or its header cannot be
/// read (then the message is forwarded as it is: see mime.md).
std::optional<std::string> without_field(std::string_view message, std::string_view name);
/// The same with the message's header already scanned (root: scan(message).root).
std::optional<std::string> without_field(std::string_view message, const Part& root, std::string_view name);

/// The value of a header field (last occurrence), "" when absent.
std::string field_value(const Part& part, std::string_view name);

/// Calls visit(name, value) for each parameter after the first ';' of a header
/// value such as a Content-Type (RFC 2045 §5.1): names in lower case, quoted
/// values unquoted (a quoted ';' stays in its value). Stops early when visit
/// returns false.
void for_each_parameter(std::string_view value,
                        const std::function<bool(std::string_view name, std::string value)>& visit);

}  // namespace unsubrelay::mime
