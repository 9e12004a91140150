// pg_feedback.cpp: bounces and complaints on PostgreSQL (feedback.hpp).
// The same rules as sqlite_feedback.cpp, in one transaction per report.
#include <fmt/format.h>

#include "pg_parts.hpp"

namespace unsubrelay::store::pg {

namespace {

constexpr const char* distinct_reports = "COUNT(DISTINCT CASE WHEN launch_list_id = '' THEN 'row' || id "
                                         "ELSE launch_list_id END)";

/// Counting starts over after a bounce suppression expired or was lifted.
long long reset_point(pqxx::work& w, const std::string& address, long long now) {
  const auto r = w.exec_params("SELECT expires FROM suppressions WHERE address = $1 AND scope = 'all' AND "
                               "scope_value = '' AND expires != 0 AND expires <= $2",
                               address, now);
  return r.empty() ? 0 : r[0][0].as<long long>();
}

long long count_since(pqxx::work& w, const std::string& address, FeedbackKind kind, long long since) {
  return w.exec_params(fmt::format("SELECT {} FROM feedback WHERE address = $1 AND kind = $2 AND time > $3",
                                   distinct_reports),
                       address, std::string(name(kind)), since)[0][0]
      .as<long long>();
}

/// "In a row, no delivery between": the newest copy handed upstream to the
/// contact that no bounce names ends the row (0 when there is none).
long long last_delivery(pqxx::work& w, const std::string& uid) {
  if (uid.empty()) return 0;
  return w.exec_params("SELECT COALESCE(MAX(s.updated), 0) FROM sends s WHERE s.uid = $1 AND s.status = 'delivered' "
                       "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.uid = $1 AND f.launch_list_id = "
                       "s.launch_list_id AND f.kind IN ('hard_bounce', 'soft_bounce'))",
                       uid)[0][0]
      .as<long long>();
}

void apply_bounce(pqxx::work& w, const Feedback& f, const FeedbackPolicy& policy, FeedbackOutcome& out) {
  const bool hard = f.kind == FeedbackKind::hard_bounce;
  auto since = reset_point(w, f.address, f.time);
  if (!hard) {
    const bool active = !w.exec_params("SELECT 1 FROM suppressions WHERE address = $1 AND scope = 'all' AND "
                                       "(expires = 0 OR expires > $2)",
                                       f.address, f.time)
                             .empty();
    if (active) return;  // already suppressed (maybe for a hard bounce): a soft one changes nothing
    since = std::max(since, last_delivery(w, f.uid));
  }
  out.count = static_cast<unsigned>(count_since(w, f.address, f.kind, since));
  const auto limit = hard ? policy.hard_bounce_limit : policy.soft_bounce_limit;
  if (limit == 0 || out.count < limit) return;
  Suppression entry{f.address, Scope::all_mail, "", name(f.kind), f.source, f.time,
                    policy.suppression_seconds ? f.time + policy.suppression_seconds : 0};
  upsert(w, entry);
  out.suppressed = entry;
}

void apply_complaint(pqxx::work& w, const Feedback& f, FeedbackOutcome& out) {
  const auto uid = f.uid.empty() ? uid_in(w, f.address) : f.uid;
  w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time) "
                "VALUES ($1, $2, $3, 'unsubscribe', 'complaint', $4)",
                uid, f.email_id, f.launch_list_id, f.time);
  Suppression entry{f.address, Scope::campaigns, "", "complaint", f.source, f.time, 0};
  upsert(w, entry);
  out.suppressed = entry;
}

}  // namespace

FeedbackOutcome record_feedback(pqxx::work& w, const Feedback& report, const FeedbackPolicy& policy) {
  Feedback f = report;
  f.address = normalise_address(f.address);
  FeedbackOutcome out;
  const auto inserted = w.exec_params(
      "INSERT INTO feedback (address, uid, launch_list_id, email_id, kind, status, diagnostic, source, time, dedup_key) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
      f.address, f.uid, f.launch_list_id, f.email_id, std::string(name(f.kind)), f.status.substr(0, 64),
      f.diagnostic.substr(0, 500), f.source, f.time, f.dedup_key.substr(0, 300));
  out.duplicate = inserted.empty();
  if (out.duplicate) return out;
  // Its event (issue 26), before the unsubscribe a complaint causes; an
  // in-session refusal's (smtp) is written with the copy's send record instead.
  if (f.source != "smtp") insert_feedback_event(w, f);
  if (f.address.empty()) return out;
  if (f.kind == FeedbackKind::complaint) {
    apply_complaint(w, f, out);
  } else if (f.kind != FeedbackKind::blocked) {
    apply_bounce(w, f, policy, out);
  }
  return out;
}

std::vector<SentCopy> sent_copies(pqxx::work& w, const std::string& upstream_id) {
  std::vector<SentCopy> out;
  const auto r = w.exec_params(
      "SELECT s.uid, c.address, s.launch_list_id, COALESCE(l.email_id, '') FROM sends s "
      "JOIN contacts c ON c.uid = s.uid LEFT JOIN launches l ON l.launch_list_id = s.launch_list_id "
      "WHERE s.upstream_id = $1 AND s.upstream_id != '' LIMIT 100",
      upstream_id);
  for (const auto& row : r) {
    out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                   row[3].as<std::string>()});
  }
  return out;
}

FeedbackWindow feedback_window(pqxx::work& w, long long since) {
  FeedbackWindow out;
  out.complaints = w.exec_params("SELECT COUNT(DISTINCT address || ' ' || launch_list_id) FROM feedback "
                                 "WHERE time >= $1 AND kind = 'complaint'",
                                 since)[0][0]
                       .as<std::uint64_t>();
  out.delivered = w.exec_params("SELECT COUNT(*) FROM sends WHERE updated >= $1 AND status = 'delivered'", since)[0][0]
                      .as<std::uint64_t>();
  return out;
}

void feedback_summary(pqxx::work& w, const std::string& email_id, const std::string& launch, Summary& out) {
  const auto r = w.exec_params("SELECT kind, COUNT(DISTINCT CASE WHEN uid != '' THEN uid ELSE address END) FROM "
                               "feedback WHERE email_id = $1 AND ($2 = '' OR launch_list_id = $2) GROUP BY kind",
                               email_id, launch);
  for (const auto& row : r) {
    const auto n = row[1].as<std::uint64_t>();
    switch (parse_feedback_kind(row[0].as<std::string>()).value_or(FeedbackKind::blocked)) {
      case FeedbackKind::hard_bounce: out.hard_bounced = n; break;
      case FeedbackKind::soft_bounce: out.soft_bounced = n; break;
      case FeedbackKind::blocked: out.blocked = n; break;
      case FeedbackKind::complaint: out.complaints = n; break;
    }
  }
  out.sent_after_optout = w.exec_params("SELECT COALESCE(SUM(s.after_optout), 0) FROM sends s JOIN launches l ON "
                                        "l.launch_list_id = s.launch_list_id WHERE l.email_id = $1 AND "
                                        "($2 = '' OR l.launch_list_id = $2)",
                                        email_id, launch)[0][0]
                              .as<std::uint64_t>();
}

}  // namespace unsubrelay::store::pg
