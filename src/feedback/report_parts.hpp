// report_parts.hpp (private to src/feedback): walking a scanned report.
//
// The MIME structure comes from mime::scan(); these helpers only pick parts
// out of its tree and undo their transfer encodings, within ReportLimits.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/feedback/dsn.hpp"
#include "unsubrelay/feedback/report.hpp"
#include "unsubrelay/mime/scanner.hpp"

namespace unsubrelay::feedback::detail {

struct ScannedReport {
  mime::ScanResult scan;
  bool unreadable = false;  // the top header is over its limit
};

/// mime::scan with the report limits; the scanner's notes are added to notes.
ScannedReport scan_report(std::string_view message, const ReportLimits& limits, std::vector<std::string>& notes);

/// A Content-Type parameter of a part ("report-type"), "" when absent.
std::string content_type_param(const mime::Part& part, std::string_view name);
inline std::string report_type(const mime::Part& root) { return content_type_param(root, "report-type"); }

/// Parts for which pred holds, depth first in document order.
std::vector<const mime::Part*> parts_where(const mime::Part& root,
                                           const std::function<bool(const mime::Part&)>& pred);

/// The returned message or header part: message/rfc822, message/global,
/// text/rfc822-headers, message/global-headers; the first after `after` in
/// document order, else the first anywhere (never `after` itself).
const mime::Part* returned_part(const mime::Part& root, const mime::Part* after);

/// The part's Content-Transfer-Encoding when it is one to undo (base64,
/// quoted-printable), "" for 7bit/8bit/binary and unknown ones.
std::string transfer_encoding(const mime::Part& part);

/// The part's body with its transfer encoding undone (bad base64: the raw
/// body, with a note), cut at limits.max_status_bytes.
std::string decoded_body(std::string_view message, const mime::Part& part, const ReportLimits& limits,
                         std::vector<std::string>& notes);

/// Decodes bytes in a transfer encoding as transfer_encoding() names it.
std::string decode_transfer(std::string_view bytes, std::string_view encoding, std::size_t max_bytes,
                            std::vector<std::string>& notes);

}  // namespace unsubrelay::feedback::detail

namespace unsubrelay::feedback {
/// dsn_plain.cpp: a bounce that has no delivery-status part (qmail, classic Exim).
/// scanned: the message as parse_dsn() scanned it; notes so far are kept.
DsnParse parse_plain_bounce(std::string_view message, const detail::ScannedReport& scanned, const ReportLimits& limits,
                            std::vector<std::string> notes);
}  // namespace unsubrelay::feedback
