// processor.hpp: what one report mailed to a feedback address means (pure).
//
// A DSN to b+TOKEN@return_path_domain or an ARF report to a complaint address
// becomes at most one store::Feedback, naming the contact through a signed
// token that token::verify() accepted. Nothing here trusts an unverified
// token: a forged or garbled one names nobody, so it changes nothing. An
// address alone (Original-Rcpt-To) proves nothing either: it is believed
// only from a client in feedback.trusted_networks (issue 22). The
// I/O around it (the address of the uid, recording, forwarding to the
// launch's sender) is delivery/feedback_transport.cpp's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/feedback/addresses.hpp"
#include "unsubrelay/store/feedback.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::feedback {

/// Where a report came from (the queue file's envelope).
struct Origin {
  std::string queue_id;  // names DSNs that identify nobody
  bool trusted = false;  // the SMTP client is in feedback.trusted_networks
};

struct Resolution {
  /// The report to record: uid, email_id and launch_list_id from the token
  /// (address "" until the caller looks the uid up), or address only (an
  /// unredacted Original-Rcpt-To from a trusted client), or neither (a DSN
  /// whose VERP token does not verify: recorded and counted, applied to no
  /// one). nullopt: nothing to record (a DSN that says the copy was
  /// delivered, not a report, or an unverified one).
  std::optional<store::Feedback> report;
  /// An ARF report no token proves (SPEC Part 2 "Complaints", issue 22): kept
  /// bounded and counted as unverified, never applied. Set only when report is not.
  std::optional<store::UnverifiedReport> unverified;
  std::string how;  // for the log: "dsn rfc3464", "arf list_unsubscribe token", ...
  /// The id of the key that verified the report's token: whose tenant it is
  /// (SPEC Part 3); "" when no token proved anything.
  std::string key_id;
};

/// recipient: the feedback address the message came to (one of
/// Addresses::classify's kinds).
Resolution resolve_report(std::string_view message, std::string_view recipient, const Addresses& addresses,
                          const token::KeySet& keys, long long now, const Origin& origin);

}  // namespace unsubrelay::feedback
