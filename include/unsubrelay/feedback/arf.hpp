// arf.hpp: abuse feedback reports (RFC 5965, RFC 6590 redaction, RFC 6650).
//
// parse_arf() reads a whole message as spooled and finds its feedback report:
// the message/feedback-report part of a multipart/report (report-type=
// feedback-report; a missing or wrong report-type is accepted with a note when
// the part is there, as some feedback loops send it), and the returned message
// (message/rfc822 or text/rfc822-headers, RFC 6650 §2) as a byte range.
//
// Finding the contact behind a complaint is locate.hpp's job
// (complaint_token_candidates()): the returned message carries our tokens
// even when the report is redacted.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/feedback/report.hpp"

namespace unsubrelay::feedback {

struct FeedbackReport {
  std::string feedback_type;        // lower case: abuse, fraud, virus, other, not-spam, auth-failure
  std::string user_agent;           // User-Agent
  std::string version;              // Version
  std::string original_mail_from;   // Original-Mail-From, angle brackets removed
  std::vector<std::string> original_rcpt_to;  // Original-Rcpt-To (several allowed), brackets removed
  std::string arrival_date;         // Arrival-Date (also the older Received-Date)
  std::string source_ip;            // Source-IP
  std::vector<std::string> reported_domain;   // Reported-Domain
  std::vector<std::string> reported_uri;      // Reported-URI
  std::string original_envelope_id; // Original-Envelope-Id
  std::string reporting_mta;        // Reporting-MTA without its type
  std::string incidents;            // Incidents
  ByteRange returned;               // the returned message or header; empty when none
  bool returned_headers_only = false;  // text/rfc822-headers
  std::string returned_encoding;    // its Content-Transfer-Encoding, lower case ("" = identity)
};

enum class ArfError {
  none,
  not_a_report,      // no message/feedback-report part
  no_feedback_type,  // the feedback part has no Feedback-Type
  unreadable,        // the top header could not be read (over the header limit)
};
const char* describe(ArfError e);

struct ArfParse {
  ArfError error = ArfError::not_a_report;
  FeedbackReport report;            // valid when error == ArfError::none
  std::vector<std::string> notes;   // oddities seen, for the log (client text: printable() it)
  bool ok() const { return error == ArfError::none; }
};

ArfParse parse_arf(std::string_view message, const ReportLimits& limits = {});

/// True when an Original-Rcpt-To value looks redacted (RFC 6590 §4 lets the
/// reporter replace the local part, e.g. with a hash or "redacted"): no '@',
/// a local part containing "redacted", or one made only of 'x', '*' or '#'.
/// A hashed local part cannot be told from a real one. The caller believes
/// an address only from a client in feedback.trusted_networks (processor.hpp).
bool looks_redacted(std::string_view address);

/// The first Original-Rcpt-To that does not look redacted, "" when none.
std::string unredacted_recipient(const FeedbackReport& report);

/// The returned message's bytes, decoded when the part carried a transfer
/// encoding (base64/quoted-printable, seen with message/global); at most
/// limits.max_status_bytes. Empty when the report returned nothing.
std::string returned_message_text(std::string_view message, const ByteRange& returned, std::string_view encoding,
                                  const ReportLimits& limits = {});

}  // namespace unsubrelay::feedback
