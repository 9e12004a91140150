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

/// An ARF report no token of ours proves (issue 22): it names its contact by
/// address only and its SMTP client is outside feedback.trusted_networks, or
/// its tokens do not verify, or it names nobody. It is kept for the operator
/// in a bounded table, applied to nobody, creates no contact, is no complaint
/// (the complaint rate ignores it) and is never forwarded. The address it
/// claims is in the log line only, so the table holds nobody's address.
struct UnverifiedReport {
  std::string client;    // the SMTP client's address, as the queue file recorded it
  std::string queue_id;
  std::string source;    // arf
  std::string reason;    // address_only | bad_token | no_contact
  std::string detail;    // Feedback-Type, User-Agent, Source-IP (kept to 500 bytes)
  long long time = 0;
};

/// The table's bounds, so a flood of forged reports cannot grow the database:
/// each insert prunes rows past max_rows (oldest first) and older than max_age_seconds.
struct UnverifiedBounds {
  std::size_t max_rows = 10000;
  long long max_age_seconds = 30 * 86400;
};

/// Unverified reports ever kept (a counter), and the rows the table holds now.
struct UnverifiedTally {
  std::uint64_t total = 0;
  std::uint64_t kept = 0;
};

/// forward_to_sender (issue 22 point 2): whether this copy of a report may be
/// passed on. A report (one dedup_key) is forwarded at most once, and a launch
/// sender gets at most forward_per_hour forwards an hour.
enum class ForwardClaim {
  forward,    // claimed for this copy (or this copy's own earlier, deferred try): send it
  duplicate,  // another copy of the report was (or is being) forwarded
  limited,    // the sender's forward_per_hour is spent: not forwarded, counted
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
