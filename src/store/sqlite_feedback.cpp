// sqlite_feedback.cpp: bounces and complaints on SQLite (feedback.hpp).
#include <fmt/format.h>

#include "sqlite_db.hpp"
#include "sqlite_parts.hpp"

namespace unsubrelay::store::sqlite {

namespace {

// Bounces count per launch (a DSN and an SES notification of one bounce are one),
// and rows that name no launch count one each.
constexpr const char* distinct_reports = "COUNT(DISTINCT CASE WHEN launch_list_id = '' THEN 'row' || id "
                                         "ELSE launch_list_id END)";

/// Counting starts over after a bounce suppression expired or was lifted.
std::optional<long long> reset_point(SqliteDb& db, const std::string& address, long long now) {
  Statement s(db.db_, "SELECT expires FROM suppressions WHERE address = ? AND scope = 'all' AND scope_value = '' "
                      "AND expires != 0 AND expires <= ?");
  s.bind(1, address).bind(2, now);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return s.integer(0);
  if (rc == SQLITE_DONE) return 0;
  return db.fail();
}

std::optional<long long> count_since(SqliteDb& db, const std::string& address, FeedbackKind kind, long long since) {
  const auto sql =
      fmt::format("SELECT {} FROM feedback WHERE address = ? AND kind = ? AND time > ?", distinct_reports);
  Statement s(db.db_, sql.c_str());
  s.bind(1, address).bind(2, std::string(name(kind))).bind(3, since);
  if (s.step() != SQLITE_ROW) return db.fail();
  return s.integer(0);
}

/// "In a row, no delivery between": the newest copy handed upstream to the
/// contact that no bounce names ends the row (0 when there is none).
std::optional<long long> last_delivery(SqliteDb& db, const std::string& uid) {
  if (uid.empty()) return 0;
  Statement s(db.db_,
              "SELECT COALESCE(MAX(s.updated), 0) FROM sends s WHERE s.uid = ?1 AND s.status = 'delivered' AND NOT "
              "EXISTS (SELECT 1 FROM feedback f WHERE f.uid = ?1 AND f.launch_list_id = s.launch_list_id AND "
              "f.kind IN ('hard_bounce', 'soft_bounce'))");
  s.bind(1, uid);
  if (s.step() != SQLITE_ROW) return db.fail();
  return s.integer(0);
}

std::optional<bool> has_active_bounce_entry(SqliteDb& db, const std::string& address, long long now) {
  Statement s(db.db_, "SELECT 1 FROM suppressions WHERE address = ? AND scope = 'all' AND (expires = 0 OR expires > ?)");
  s.bind(1, address).bind(2, now);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db.fail();
}

/// A bounce: count it and suppress the address for all mail at the limit.
bool apply_bounce_locked(SqliteDb& db, const Feedback& f, const FeedbackPolicy& policy, FeedbackOutcome& out) {
  const bool hard = f.kind == FeedbackKind::hard_bounce;
  const auto reset = reset_point(db, f.address, f.time);
  if (!reset) return false;
  auto since = *reset;
  if (!hard) {
    const auto active = has_active_bounce_entry(db, f.address, f.time);
    if (!active) return false;
    if (*active) return true;  // already suppressed (maybe for a hard bounce): a soft one changes nothing
    const auto delivered = last_delivery(db, f.uid);
    if (!delivered) return false;
    since = std::max(since, *delivered);
  }
  const auto count = count_since(db, f.address, f.kind, since);
  if (!count) return false;
  out.count = static_cast<unsigned>(*count);
  const auto limit = hard ? policy.hard_bounce_limit : policy.soft_bounce_limit;
  if (limit == 0 || out.count < limit) return true;
  Suppression entry{f.address, Scope::all_mail, "", name(f.kind), f.source, f.time,
                    policy.suppression_seconds ? f.time + policy.suppression_seconds : 0};
  if (!upsert_locked(db, entry)) return false;
  out.suppressed = entry;
  return true;
}

/// A complaint: an unsubscribe from all campaigns, recorded as an event (source complaint).
bool apply_complaint_locked(SqliteDb& db, const Feedback& f, FeedbackOutcome& out) {
  auto uid = f.uid.empty() ? uid_locked(db, f.address) : std::optional<std::string>(f.uid);
  if (!uid) return false;
  Statement e(db.db_, "INSERT INTO events (uid, email_id, launch_list_id, action, source, time) "
                      "VALUES (?, ?, ?, 'unsubscribe', 'complaint', ?)");
  e.bind(1, *uid).bind(2, f.email_id).bind(3, f.launch_list_id).bind(4, f.time);
  if (e.step() != SQLITE_DONE) return db.failed();
  Suppression entry{f.address, Scope::campaigns, "", "complaint", f.source, f.time, 0};
  if (!upsert_locked(db, entry)) return false;
  out.suppressed = entry;
  return true;
}

bool insert_report_locked(SqliteDb& db, const Feedback& f, bool& inserted) {
  Statement s(db.db_, "INSERT INTO feedback (address, uid, launch_list_id, email_id, kind, status, diagnostic, source, "
                      "time, dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING");
  s.bind(1, normalise_address(f.address)).bind(2, f.uid).bind(3, f.launch_list_id).bind(4, f.email_id);
  s.bind(5, std::string(name(f.kind))).bind(6, f.status.substr(0, 64)).bind(7, f.diagnostic.substr(0, 500));
  s.bind(8, f.source).bind(9, f.time).bind(10, f.dedup_key.substr(0, 300));
  if (s.step() != SQLITE_DONE) return db.failed();
  inserted = sqlite3_changes(db.db_) > 0;
  return true;
}

}  // namespace

std::optional<FeedbackOutcome> record_feedback(SqliteDb& db, const Feedback& report, const FeedbackPolicy& policy) {
  Feedback f = report;
  f.address = normalise_address(f.address);
  std::lock_guard lock(db.mutex_);
  if (!db.exec("BEGIN IMMEDIATE")) return std::nullopt;
  FeedbackOutcome out;
  bool inserted = false;
  bool ok = insert_report_locked(db, f, inserted);
  out.duplicate = ok && !inserted;
  // Its event (issue 26), before the unsubscribe a complaint causes; an
  // in-session refusal's (smtp) is written with the copy's send record instead.
  if (ok && inserted && f.source != "smtp") ok = insert_feedback_event_locked(db, f);
  if (ok && inserted && !f.address.empty()) {
    if (f.kind == FeedbackKind::complaint) {
      ok = apply_complaint_locked(db, f, out);
    } else if (f.kind != FeedbackKind::blocked) {
      ok = apply_bounce_locked(db, f, policy, out);
    }
  }
  if (!ok || !db.exec("COMMIT")) {
    return db.rollback();
  }
  return out;
}

std::optional<std::vector<SentCopy>> sent_copies(SqliteDb& db, const std::string& upstream_id) {
  std::lock_guard lock(db.mutex_);
  Statement s(db.db_,
              "SELECT s.uid, c.address, s.launch_list_id, COALESCE(l.email_id, '') FROM sends s "
              "JOIN contacts c ON c.uid = s.uid LEFT JOIN launches l ON l.launch_list_id = s.launch_list_id "
              "WHERE s.upstream_id = ? AND s.upstream_id != '' LIMIT 100");
  s.bind(1, upstream_id);
  std::vector<SentCopy> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
  if (rc != SQLITE_DONE) return db.fail();
  return out;
}

std::optional<FeedbackWindow> feedback_window(SqliteDb& db, long long since) {
  std::lock_guard lock(db.mutex_);
  FeedbackWindow w;
  Statement c(db.db_, "SELECT COUNT(DISTINCT address || ' ' || launch_list_id) FROM feedback "
                      "WHERE time >= ? AND kind = 'complaint'");
  c.bind(1, since);
  if (c.step() != SQLITE_ROW) return db.fail();
  w.complaints = static_cast<std::uint64_t>(c.integer(0));
  Statement d(db.db_, "SELECT COUNT(*) FROM sends WHERE updated >= ? AND status = 'delivered'");
  d.bind(1, since);
  if (d.step() != SQLITE_ROW) return db.fail();
  w.delivered = static_cast<std::uint64_t>(d.integer(0));
  return w;
}

bool feedback_summary_locked(SqliteDb& db, const std::string& email_id, const std::string& launch, Summary& out) {
  Statement s(db.db_, "SELECT kind, COUNT(DISTINCT CASE WHEN uid != '' THEN uid ELSE address END) FROM feedback "
                      "WHERE email_id = ?1 AND (?2 = '' OR launch_list_id = ?2) GROUP BY kind");
  s.bind(1, email_id).bind(2, launch);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    const auto n = static_cast<std::uint64_t>(s.integer(1));
    switch (parse_feedback_kind(s.text(0)).value_or(FeedbackKind::blocked)) {
      case FeedbackKind::hard_bounce: out.hard_bounced = n; break;
      case FeedbackKind::soft_bounce: out.soft_bounced = n; break;
      case FeedbackKind::blocked: out.blocked = n; break;
      case FeedbackKind::complaint: out.complaints = n; break;
    }
  }
  if (rc != SQLITE_DONE) return db.failed();
  Statement a(db.db_, "SELECT COALESCE(SUM(s.after_optout), 0) FROM sends s JOIN launches l ON "
                      "l.launch_list_id = s.launch_list_id WHERE l.email_id = ?1 AND (?2 = '' OR l.launch_list_id = ?2)");
  a.bind(1, email_id).bind(2, launch);
  if (a.step() != SQLITE_ROW) return db.failed();
  out.sent_after_optout = static_cast<std::uint64_t>(a.integer(0));
  return true;
}

}  // namespace unsubrelay::store::sqlite
