// dsn.hpp: delivery status notifications (RFC 3464, RFC 6533) as they come back.
//
// parse_dsn() reads a whole message as spooled (CRLF; bare LF is tolerated)
// and finds its delivery report: the message/delivery-status (or RFC 6533
// message/global-delivery-status) part of a multipart/report, also when the
// report-type parameter is missing or wrong, the report sits inside a
// multipart/mixed, or the status part is quoted-printable or base64. The
// returned message (message/rfc822, message/global, text/rfc822-headers,
// message/global-headers) is given as a byte range of the input.
//
// A bounce that is not MIME at all (qmail's QSBMF, old Exim and Sendmail
// plain-text notices) is read from its text: "<address>:" paragraphs, a
// status found in "550 5.1.1" or "(#5.1.1)", "permanent"/"temporary" wording,
// and the copy after "--- Below this line is a copy of the message.". Such a
// report says Format::plain_text, so the caller can log how it was read.
//
// classify() turns one recipient into the kinds of SPEC Part 2 "Bounces".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/feedback/report.hpp"

namespace unsubrelay::feedback {

/// One per-recipient group (RFC 3464 §2.3). Strings as written, trimmed;
/// the address fields without their type ("rfc822;") and angle brackets.
struct DsnRecipient {
  std::string final_recipient;     // Final-Recipient
  std::string original_recipient;  // Original-Recipient ("" when absent)
  std::string action;              // lower case: failed, delayed, delivered, relayed, expanded
  std::string status;              // the enhanced code only, "5.1.1" ("" when none could be read)
  std::string diagnostic_type;     // "smtp" from "smtp; 550 5.1.1 ..."
  std::string diagnostic;          // the text after the type: "550 5.1.1 User unknown"
  std::string remote_mta;          // Remote-MTA without its type
  std::string last_attempt_date;   // Last-Attempt-Date
};

enum class DsnFormat {
  rfc3464,     // a message/delivery-status part
  rfc6533,     // a message/global-delivery-status part
  plain_text,  // no status part: read from the human-readable text
};

struct DeliveryReport {
  DsnFormat format = DsnFormat::rfc3464;
  std::string reporting_mta;        // Reporting-MTA without its type ("dns;")
  std::string arrival_date;         // Arrival-Date
  std::string original_envelope_id; // Original-Envelope-Id
  std::vector<DsnRecipient> recipients;
  ByteRange returned;               // the returned message or header; empty when none
  bool returned_headers_only = false;  // text/rfc822-headers (or message/global-headers)
  std::string returned_encoding;    // its Content-Transfer-Encoding, lower case ("" = identity)
};

enum class DsnError {
  none,
  not_a_report,     // no delivery-status part and no plain-text bounce wording
  no_recipients,    // a status part without one per-recipient group
  unreadable,       // the top header could not be read (over the header limit)
};
const char* describe(DsnError e);

struct DsnParse {
  DsnError error = DsnError::not_a_report;
  DeliveryReport report;            // valid when error == DsnError::none
  std::vector<std::string> notes;   // oddities seen, for the log (client text: printable() it)
  bool ok() const { return error == DsnError::none; }
};

DsnParse parse_dsn(std::string_view message, const ReportLimits& limits = {});

/// What a bounce means for the contact (SPEC Part 2 "Bounces").
enum class BounceKind {
  hard,       // failed with 5.1.x (bad address or mailbox) or 5.2.1 (mailbox disabled)
  blocked,    // any other 5.x.x: policy, content, reputation: never suppresses
  soft,       // delayed, or a 4.x.x status
  unknown,    // failed without a readable status, or an action we do not know
  delivered,  // delivered, relayed, expanded: not a failure at all
};
const char* describe(BounceKind k);

/// Kind of an enhanced status code alone (as an in-session SMTP reply gives
/// it): "5.1.1" hard, "5.7.1" blocked, "4.2.2" soft, anything else unknown.
/// 5.1.7 and 5.1.8 (the *sender's* address is bad, RFC 3463) are blocked:
/// they say nothing about the recipient's mailbox.
BounceKind classify_status(std::string_view enhanced_status);

/// Kind of one DSN recipient: Action first (delayed → soft, delivered/relayed/
/// expanded → delivered), then the status (falling back to an enhanced code
/// found in Diagnostic-Code). A missing Action is read as failed.
BounceKind classify(const DsnRecipient& recipient);

/// The first enhanced status code ("5.1.1", "4.7.0", also Exchange's
/// "5.1.10") in text, "" when none: class 2, 4 or 5, subject and detail of
/// 1-3 digits, not inside a longer number or dotted quad.
std::string find_enhanced_status(std::string_view text);

}  // namespace unsubrelay::feedback
