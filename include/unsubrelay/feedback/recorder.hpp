// recorder.hpp: one place where a resolved bounce or complaint meets the store.
//
// The DSN/ARF mail processor, the in-session classification of the queue
// manager and POST /feedback/ses all end here: the report is recorded (once
// per de-duplication key) and applied (bounce limits, complaint
// unsubscribes) in one store transaction, then logged and counted.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "unsubrelay/store/store.hpp"

namespace unsubrelay::feedback {

/// The feedback side of /metrics (SPEC Part 2 "Statistics and compliance evidence").
class FeedbackMetrics {
 public:
  void count(const std::string& kind, const std::string& source);
  std::atomic<std::uint64_t> sent_after_optout{0};
  std::atomic<double> complaint_rate{0};  // complaints / delivered campaign copies, last 24 h (store-wide)
  // forward_to_sender: reports handed upstream, copies of a report already
  // forwarded, and reports past the sender's forward_per_hour (this process).
  std::atomic<std::uint64_t> forwards_sent{0}, forwards_duplicate{0}, forwards_limited{0};
  /// unsubrelay_feedback_total{kind,source} (kind "unverified": issue 22),
  /// unsubrelay_feedback_forwards_total{result}, unsubrelay_complaint_rate,
  /// unsubrelay_sent_after_optout_total.
  std::string prometheus() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> totals_;
};

class Recorder {
 public:
  Recorder(store::Store& store, store::FeedbackPolicy policy, FeedbackMetrics& metrics)
      : store_(store), policy_(policy), metrics_(metrics) {}

  /// Records and applies one report; nullopt when the store failed (nothing
  /// was recorded: the caller keeps the report and tries again later).
  /// context: who is asking, for the log ("QUEUEID", "ses").
  std::optional<store::FeedbackOutcome> record(const store::Feedback& report, const std::string& context);
  /// Keeps an unverified report (bounded), logs and counts it; false when the
  /// store failed (the caller keeps the report and tries again later).
  bool record_unverified(const store::UnverifiedReport& report, const std::string& context);

  store::Store& store() { return store_; }
  FeedbackMetrics& metrics() { return metrics_; }

 private:
  store::Store& store_;
  store::FeedbackPolicy policy_;
  FeedbackMetrics& metrics_;
};

}  // namespace unsubrelay::feedback
