// feedback.hpp: bounces and complaints as the store keeps them.
//
// Every report (an in-session refusal, a DSN, an ARF report, an SES
// notification) becomes one row with a de-duplication key: a retried SNS
// notification or a DSN mailed twice counts once. Recording a row also
// decides, in the same transaction, whether the address reaches its
// bounce limit (and is suppressed for all mail) or, for a complaint, is
// unsubscribed from all campaigns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "unsubrelay/store/suppression.hpp"

namespace unsubrelay::store {

enum class FeedbackKind { hard_bounce, soft_bounce, blocked, complaint };
const char* name(FeedbackKind k);  // the words above: stored, logged, metric labels
std::optional<FeedbackKind> parse_feedback_kind(std::string_view text);

struct Feedback {
  std::string address;         // lower case; "" when the report named nobody we know
  std::string uid;             // "" when unknown
  std::string launch_list_id;  // "" when unknown
  std::string email_id;
  FeedbackKind kind = FeedbackKind::soft_bounce;
  std::string status;          // enhanced status code ("5.1.1"), or the SES/ARF type
  std::string diagnostic;      // the remote server's words (kept to 500 bytes)
  std::string source;          // smtp | dsn | ses | arf
  long long time = 0;
  std::string dedup_key;       // one row per key
};

/// feedback: hard_bounce_limit, soft_bounce_limit, bounce_suppression_days.
struct FeedbackPolicy {
  unsigned hard_bounce_limit = 0;  // 0 = bounces never suppress
  unsigned soft_bounce_limit = 0;
  long long suppression_seconds = 0;  // 0 = until lifted

  static FeedbackPolicy from(const config::Feedback& f) {
    return {f.hard_bounce_limit, f.soft_bounce_limit, static_cast<long long>(f.bounce_suppression_days) * 86400};
  }
};

struct FeedbackOutcome {
  bool duplicate = false;  // its key was seen before: nothing changed
  unsigned count = 0;      // hard bounces, or soft bounces in a row, of the address so far
  std::optional<Suppression> suppressed;  // the entry this report created or renewed
};

/// A campaign copy as recorded at send time, found again by its upstream id.
struct SentCopy {
  std::string uid;
  std::string address;
  std::string launch_list_id;
  std::string email_id;
};

/// Complaints and delivered campaign copies over a window (the complaint rate).
struct FeedbackWindow {
  std::uint64_t complaints = 0;
  std::uint64_t delivered = 0;
  double rate() const { return delivered ? static_cast<double>(complaints) / static_cast<double>(delivered) : 0.0; }
};

}  // namespace unsubrelay::store
