// complaint_rate.cpp: the complaint-rate gauge and its log lines.
#include "unsubrelay/feedback/complaint_rate.hpp"

#include <spdlog/spdlog.h>

namespace unsubrelay::feedback {

RateLevel rate_level(double rate) {
  if (rate > complaint_rate_error) return RateLevel::error;
  if (rate > complaint_rate_warning) return RateLevel::warning;
  return RateLevel::normal;
}

void ComplaintRateWatch::check(long long now) {
  constexpr long long day = 86400, hour = 3600;
  const auto window = store_.feedback_window(now - day);
  if (!window) {
    spdlog::warn("{}complaint rate: store: {}", tenant_.empty() ? "" : "tenant " + tenant_ + ": ", store_.last_error());
    return;
  }
  const double rate = window->rate();
  metrics_.set_complaint_rate(tenant_, rate);
  const auto who = tenant_.empty() ? std::string() : "tenant " + tenant_ + ": ";
  const auto level = rate_level(rate);
  const bool changed = level != level_;
  level_ = level;
  if (level == RateLevel::normal) {
    if (changed) spdlog::info("{}complaint rate back to {:.3f}% over 24 h ({} complaints, {} delivered)", who,
                              rate * 100, window->complaints, window->delivered);
    return;
  }
  if (!changed && now - last_logged_ < hour) return;
  last_logged_ = now;
  spdlog::log(level == RateLevel::error ? spdlog::level::err : spdlog::level::warn,
              "{}complaint rate {:.3f}% over 24 h ({} complaints, {} delivered campaign copies): past the {} limit "
              "of bulk-sender rules (Gmail, Yahoo)",
              who, rate * 100, window->complaints, window->delivered, level == RateLevel::error ? "0.3%" : "0.1%");
}

}  // namespace unsubrelay::feedback
