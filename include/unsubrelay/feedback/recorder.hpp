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
#include <tuple>
#include <utility>

#include "unsubrelay/store/store.hpp"

namespace unsubrelay::feedback {

/// The feedback side of /metrics (SPEC Part 2 "Statistics and compliance
/// evidence"). tenant: "" without tenants (no label), else the tenant's id
/// (SPEC Part 3: a label on each series).
class FeedbackMetrics {
 public:
  void count(const std::string& kind, const std::string& source, const std::string& tenant = "");
  /// Complaints / delivered campaign copies over the last 24 h, of one tenant's store (fleet-wide).
  void set_complaint_rate(const std::string& tenant, double rate);
  std::atomic<std::uint64_t> sent_after_optout{0};
  // forward_to_sender: reports handed upstream, copies of a report already
  // forwarded, and reports past the sender's forward_per_hour (this process).
  std::atomic<std::uint64_t> forwards_sent{0}, forwards_duplicate{0}, forwards_limited{0};
  /// unsubrelay_feedback_total{kind,source} (kind "unverified": issue 22),
  /// unsubrelay_feedback_forwards_total{result}, unsubrelay_complaint_rate,
  /// unsubrelay_sent_after_optout_total.
  std::string prometheus() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> totals_;  // tenant, kind, source
  std::map<std::string, double> rates_;                                                // tenant -> rate
};

class Recorder {
 public:
  /// tenant: the label of its counts ("" without tenants).
  Recorder(store::Store& store, store::FeedbackPolicy policy, FeedbackMetrics& metrics, std::string tenant = "")
      : store_(store), policy_(policy), metrics_(metrics), tenant_(std::move(tenant)) {}

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
  std::string tenant_;
};

}  // namespace unsubrelay::feedback
