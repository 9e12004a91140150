// processor.hpp: what one report mailed to a feedback address means (pure).
//
// A DSN to b+TOKEN@return_path_domain or an ARF report to a complaint address
// becomes at most one store::Feedback, naming the contact through a signed
// token that token::verify() accepted. Nothing here trusts an unverified
// token: a forged or garbled one names nobody, so it changes nothing. The
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

struct Resolution {
  /// The report to record: uid, email_id and launch_list_id from the token
  /// (address "" until the caller looks the uid up), or address only (an
  /// unredacted Original-Rcpt-To), or neither (identifies nobody: recorded
  /// and counted, applied to no one). nullopt: nothing to record (a DSN
  /// that says the copy was delivered).
  std::optional<store::Feedback> report;
  std::string how;  // for the log: "dsn rfc3464", "arf list_unsubscribe token", ...
};

/// recipient: the feedback address the message came to (one of
/// Addresses::classify's kinds); queue_id names reports that identify nobody.
Resolution resolve_report(std::string_view message, std::string_view recipient, const Addresses& addresses,
                          const token::KeySet& keys, long long now, const std::string& queue_id);

}  // namespace unsubrelay::feedback
