// ses.hpp: Amazon SES bounce, complaint and delivery notifications, the JSON
// an SNS Notification carries in its Message field.
//
// Both shapes SES sends are read: identity notifications name the kind in
// "notificationType", configuration-set event publishing in "eventType".
// Field names are AWS's ("Contents of event data that Amazon SES publishes to
// Amazon SNS", "Amazon SNS notification contents for Amazon SES").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/feedback/dsn.hpp"

namespace unsubrelay::feedback {

enum class SesKind { bounce, complaint, delivery, other };

struct SesBouncedRecipient {
  std::string email_address;    // emailAddress
  std::string action;           // action ("failed"), "" when absent
  std::string status;           // status ("5.1.1"), "" when absent
  std::string diagnostic_code;  // diagnosticCode, "" when absent
};

struct SesNotification {
  SesKind kind = SesKind::other;
  std::string kind_text;                   // notificationType or eventType as sent
  std::string feedback_id;                 // bounce.feedbackId or complaint.feedbackId: de-duplication
  std::string timestamp;                   // bounce/complaint/delivery timestamp
  // bounce
  std::string bounce_type;                 // Permanent, Transient, Undetermined
  std::string bounce_sub_type;             // General, NoEmail, Suppressed, MailboxFull, ...
  std::vector<SesBouncedRecipient> bounced;
  // complaint
  std::vector<std::string> complained;     // complainedRecipients[].emailAddress
  std::string complaint_feedback_type;     // complaintFeedbackType ("abuse"), "" when absent
  std::string complaint_sub_type;          // complaintSubType (null or "OnAccountSuppressionList")
  // delivery
  std::vector<std::string> delivered;      // delivery.recipients
  // the message it is about
  std::string message_id;                  // mail.messageId: SES's id, recorded at send time
  std::string source;                      // mail.source
  std::vector<std::string> destination;    // mail.destination
};

struct SesParse {
  std::optional<SesNotification> notification;
  std::string error;  // "not JSON", "no notificationType or eventType", "bounce without bouncedRecipients", ...
};

/// Parses an SNS Message field. Unknown kinds (Send, Reject, Open, ...)
/// parse with SesKind::other so the caller can acknowledge and ignore them.
/// Wrong JSON types are errors, never exceptions; lists are bounded by
/// max_recipients (SES sends at most 50 recipients per message).
SesParse parse_ses(std::string_view message_json, std::size_t max_recipients = 1000);

/// The kind of an SES bounce (SPEC Part 2): bounceType Permanent → hard,
/// Transient → soft, Undetermined or anything else → unknown.
BounceKind classify_ses_bounce(std::string_view bounce_type);

}  // namespace unsubrelay::feedback
