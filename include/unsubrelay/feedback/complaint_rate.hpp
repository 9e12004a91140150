// complaint_rate.hpp: the 24-hour complaint rate, against Gmail's and Yahoo's bulk-sender limits.
//
// Complaints recorded per delivered campaign copy over the last 24 hours
// (store-wide: a fleet shares one rate). Past 0.1% the log warns, past 0.3%
// it errs: at each change of level, and hourly while the rate stays above 0.1%.
#pragma once

#include <string>

#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::feedback {

enum class RateLevel { normal, warning, error };
inline constexpr double complaint_rate_warning = 0.001;  // Gmail: "keep it below 0.1%"
inline constexpr double complaint_rate_error = 0.003;    // Gmail and Yahoo: never reach 0.3%
RateLevel rate_level(double rate);

class ComplaintRateWatch {
 public:
  /// tenant: whose store it reads, for the gauge's label and the log ("" without tenants).
  ComplaintRateWatch(store::Store& store, FeedbackMetrics& metrics, std::string tenant = "")
      : store_(store), metrics_(metrics), tenant_(std::move(tenant)) {}
  /// Reads the window ending at now, sets the gauge, logs as above.
  void check(long long now);
  RateLevel level() const { return level_; }

 private:
  store::Store& store_;
  FeedbackMetrics& metrics_;
  std::string tenant_;
  RateLevel level_ = RateLevel::normal;
  long long last_logged_ = 0;
};

}  // namespace unsubrelay::feedback
