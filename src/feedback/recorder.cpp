// recorder.cpp: recording, logging and counting bounces and complaints.
#include "unsubrelay/feedback/recorder.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

void FeedbackMetrics::count(const std::string& kind, const std::string& source, const std::string& tenant) {
  std::lock_guard lock(mutex_);
  ++totals_[{tenant, kind, source}];
}

void FeedbackMetrics::set_complaint_rate(const std::string& tenant, double rate) {
  std::lock_guard lock(mutex_);
  rates_[tenant] = rate;
}

namespace {
/// The tenant label, first of a series' labels: "" without tenants.
std::string tenant_label(const std::string& tenant, bool alone) {
  if (tenant.empty()) return "";
  return alone ? fmt::format("{{tenant=\"{}\"}}", tenant) : fmt::format("tenant=\"{}\",", tenant);
}
}  // namespace

std::string FeedbackMetrics::prometheus() const {
  std::string out =
      "# HELP unsubrelay_feedback_total Bounces and complaints recorded (each report once), by kind and source; "
      "kind unverified: complaints no token of ours proves, applied to nobody.\n"
      "# TYPE unsubrelay_feedback_total counter\n";
  std::lock_guard lock(mutex_);
  if (totals_.empty()) out += "unsubrelay_feedback_total{kind=\"hard_bounce\",source=\"dsn\"} 0\n";
  for (const auto& [key, n] : totals_) {
    const auto& [tenant, kind, source] = key;
    out += fmt::format("unsubrelay_feedback_total{{{}kind=\"{}\",source=\"{}\"}} {}\n", tenant_label(tenant, false),
                       kind, source, n);
  }
  out += fmt::format(
      "# HELP unsubrelay_feedback_forwards_total Reports passed on to the launch's sender (forwarded), not passed on "
      "because a copy of the report was (duplicate), or because the sender's forward_per_hour was spent (limited).\n"
      "# TYPE unsubrelay_feedback_forwards_total counter\n"
      "unsubrelay_feedback_forwards_total{{result=\"forwarded\"}} {}\n"
      "unsubrelay_feedback_forwards_total{{result=\"duplicate\"}} {}\n"
      "unsubrelay_feedback_forwards_total{{result=\"limited\"}} {}\n",
      forwards_sent.load(), forwards_duplicate.load(), forwards_limited.load());
  out += "# HELP unsubrelay_complaint_rate Complaints per delivered campaign copy over the last 24 hours.\n"
         "# TYPE unsubrelay_complaint_rate gauge\n";
  if (rates_.empty()) out += "unsubrelay_complaint_rate 0\n";
  for (const auto& [tenant, rate] : rates_) {
    out += fmt::format("unsubrelay_complaint_rate{} {}\n", tenant_label(tenant, true), rate);
  }
  out += fmt::format(
      "# HELP unsubrelay_sent_after_optout_total Copies handed upstream after an applicable opt-out was recorded "
      "(must stay 0).\n# TYPE unsubrelay_sent_after_optout_total counter\nunsubrelay_sent_after_optout_total {}\n",
      sent_after_optout.load());
  return out;
}

std::optional<store::FeedbackOutcome> Recorder::record(const store::Feedback& report, const std::string& context) {
  const auto outcome = store_.record_feedback(report, policy_);
  const auto who = report.address.empty() ? std::string("an unknown recipient")
                                          : fmt::format("<{}>", printable(report.address, 256));
  if (!outcome) {
    spdlog::warn("{}: feedback: cannot record the {} of {} now (store: {}); kept for a later try", context,
                 store::name(report.kind), who, store_.last_error());
    return std::nullopt;
  }
  if (outcome->duplicate) {
    spdlog::info("{}: feedback: {} of {} already recorded ({}), counted once", context, store::name(report.kind), who,
                 printable(report.dedup_key, 120));
    return outcome;
  }
  metrics_.count(store::name(report.kind), report.source, tenant_);
  std::string effect;
  if (outcome->suppressed) {
    const auto& s = *outcome->suppressed;
    effect = s.scope == store::Scope::all_mail
                 ? fmt::format(", suppressed for all mail ({}, {} of limit)", s.reason, outcome->count)
                 : fmt::format(", unsubscribed from all campaigns ({})", s.reason);
    if (s.expires) effect += ", until " + rfc5322_date(s.expires);
  } else if (report.kind == store::FeedbackKind::hard_bounce || report.kind == store::FeedbackKind::soft_bounce) {
    effect = fmt::format(", {} so far", outcome->count);
  }
  spdlog::info("{}: feedback: {} of {}, status={}, source={}, launch_list_id={}{} ({})", context,
               store::name(report.kind), who, printable(report.status, 40), report.source,
               printable(report.launch_list_id, 64), effect, printable(report.diagnostic, 200));
  return outcome;
}

bool Recorder::record_unverified(const store::UnverifiedReport& report, const std::string& context) {
  if (!store_.record_unverified(report, store::UnverifiedBounds{})) {
    spdlog::warn("{}: feedback: cannot keep the unverified {} report now (store: {}); kept for a later try", context,
                 report.source, store_.last_error());
    return false;
  }
  metrics_.count("unverified", report.source, tenant_);
  spdlog::warn("{}: feedback: unverified {} report ({}), client={}: applied to nobody, no complaint, not forwarded "
               "({})",
               context, report.source, report.reason, printable(report.client, 64), printable(report.detail, 200));
  return true;
}

}  // namespace unsubrelay::feedback
