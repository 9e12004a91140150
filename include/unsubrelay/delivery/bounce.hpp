// bounce.hpp: delivery status notifications (RFC 3464), pure text building.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::delivery {

struct FailedRecipient {
  std::string address;
  std::string status;      // enhanced status, "5.4.7"
  std::string diagnostic;  // the upstream's reply, or why we gave up
};

struct BounceInput {
  std::string reporting_host;  // smtp.hostname
  std::string queue_id;        // of the failed message
  std::string sender;          // the original envelope sender: the DSN's recipient
  long long arrival = 0;
  long long now = 0;
  std::vector<FailedRecipient> recipients;
  std::string_view original;   // the original content; only its header is returned
};

/// A multipart/report; report-type=delivery-status message with CRLF lines:
/// a human-readable part, the message/delivery-status part, and the original
/// header as text/rfc822-headers. Sent with the null sender <> (RFC 5321 §4.5.5)
/// so a bounce can never bounce.
std::string build_bounce(const BounceInput& input);

}  // namespace unsubrelay::delivery
