// pg_store.cpp: the fleet store: PostgreSQL through libpqxx.
//
// Several relays share one database, so an unsubscribe taken by one
// suppresses sends on all of them at once. The SQL is kept to what
// PostgreSQL-wire distributed databases (CockroachDB, YugabyteDB) also
// accept: no advisory locks, no stored procedures, no LISTEN/NOTIFY; upserts
// with ON CONFLICT; BIGSERIAL ids; migrations that are safe to race.
// The connection, its failures and reconnects are pg_connection.hpp's.
#include <atomic>
#include <pqxx/pqxx>

#include <fmt/format.h>

#include "pg_connection.hpp"
#include "pg_parts.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store {

namespace {

constexpr const char* pg_migrations[] = {
    R"(CREATE TABLE IF NOT EXISTS contacts (uid TEXT PRIMARY KEY, address TEXT NOT NULL UNIQUE, created BIGINT NOT NULL);
       CREATE TABLE IF NOT EXISTS launches (launch_list_id TEXT PRIMARY KEY, email_id TEXT NOT NULL,
                                            created BIGINT NOT NULL, kind TEXT NOT NULL DEFAULT 'batch');
       CREATE INDEX IF NOT EXISTS launches_by_email ON launches (email_id);
       CREATE TABLE IF NOT EXISTS sends (launch_list_id TEXT NOT NULL, uid TEXT NOT NULL, queue_id TEXT NOT NULL,
                                         upstream_id TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
                                         updated BIGINT NOT NULL, last_reply TEXT NOT NULL DEFAULT '',
                                         PRIMARY KEY (launch_list_id, uid));
       CREATE TABLE IF NOT EXISTS events (id BIGSERIAL PRIMARY KEY, uid TEXT NOT NULL, email_id TEXT NOT NULL,
                                          launch_list_id TEXT NOT NULL, action TEXT NOT NULL, source TEXT NOT NULL,
                                          time BIGINT NOT NULL, ip TEXT NOT NULL DEFAULT '',
                                          user_agent TEXT NOT NULL DEFAULT '');
       CREATE INDEX IF NOT EXISTS events_by_uid ON events (uid, id);)",
    R"(CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires BIGINT NOT NULL);
       CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value BIGINT NOT NULL);)",
    // Part 2: the suppression list (filled from each contact's latest event per
    // campaign), bounces and complaints, the launch's sender, sent_after_optout.
    R"(CREATE TABLE IF NOT EXISTS suppressions (address TEXT NOT NULL, scope TEXT NOT NULL,
                                               scope_value TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL,
                                               source TEXT NOT NULL, created BIGINT NOT NULL,
                                               expires BIGINT NOT NULL DEFAULT 0,
                                               PRIMARY KEY (address, scope, scope_value));
       INSERT INTO suppressions (address, scope, scope_value, reason, source, created, expires)
         SELECT c.address, 'campaign', e.email_id, 'unsubscribe', e.source, e.time, 0
         FROM events e JOIN contacts c ON c.uid = e.uid
         WHERE e.action = 'unsubscribe' AND e.id = (SELECT MAX(x.id) FROM events x WHERE x.uid = e.uid
                                                    AND x.email_id = e.email_id)
         ON CONFLICT DO NOTHING;
       CREATE TABLE IF NOT EXISTS feedback (id BIGSERIAL PRIMARY KEY, address TEXT NOT NULL,
                                            uid TEXT NOT NULL DEFAULT '', launch_list_id TEXT NOT NULL DEFAULT '',
                                            email_id TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL,
                                            status TEXT NOT NULL DEFAULT '', diagnostic TEXT NOT NULL DEFAULT '',
                                            source TEXT NOT NULL, time BIGINT NOT NULL,
                                            dedup_key TEXT NOT NULL UNIQUE);
       CREATE INDEX IF NOT EXISTS feedback_by_address ON feedback (address, kind, time);
       CREATE INDEX IF NOT EXISTS feedback_by_campaign ON feedback (email_id, launch_list_id);
       CREATE INDEX IF NOT EXISTS feedback_by_contact ON feedback (uid, launch_list_id);
       CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (time);
       ALTER TABLE launches ADD COLUMN IF NOT EXISTS sender TEXT NOT NULL DEFAULT '';
       ALTER TABLE sends ADD COLUMN IF NOT EXISTS after_optout BIGINT NOT NULL DEFAULT 0;
       CREATE INDEX IF NOT EXISTS sends_by_upstream_id ON sends (upstream_id) WHERE upstream_id != '';
       CREATE INDEX IF NOT EXISTS sends_by_uid ON sends (uid, updated);
       CREATE INDEX IF NOT EXISTS sends_delivered_by_time ON sends (updated) WHERE status = 'delivered';)",
    // Issue 13: an event's topic; the suppression list paged by created (suppression_list.hpp).
    R"(ALTER TABLE events ADD COLUMN IF NOT EXISTS topic TEXT NOT NULL DEFAULT '';
       CREATE INDEX IF NOT EXISTS suppressions_by_created
         ON suppressions (created, address COLLATE "C", scope COLLATE "C", scope_value COLLATE "C");)",
    // Issue 22: complaints no token proves, in a capped table (store/feedback.hpp
    // UnverifiedBounds) and a counter; each report's forward claimed on its row.
    R"(CREATE TABLE IF NOT EXISTS unverified_reports (id BIGSERIAL PRIMARY KEY, time BIGINT NOT NULL,
                                                     client TEXT NOT NULL, queue_id TEXT NOT NULL,
                                                     source TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL);
       CREATE INDEX IF NOT EXISTS unverified_reports_by_time ON unverified_reports (time);
       CREATE TABLE IF NOT EXISTS feedback_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
       ALTER TABLE feedback ADD COLUMN IF NOT EXISTS forward_sender TEXT NOT NULL DEFAULT '';
       ALTER TABLE feedback ADD COLUMN IF NOT EXISTS forward_owner TEXT NOT NULL DEFAULT '';
       ALTER TABLE feedback ADD COLUMN IF NOT EXISTS forwarded_at BIGINT NOT NULL DEFAULT 0;
       CREATE INDEX IF NOT EXISTS feedback_forwards ON feedback (forward_sender, forwarded_at)
         WHERE forwarded_at != 0;)",
    // Issue 24: tenant quotas, counted per window for the fleet (pg_quota.cpp).
    R"(CREATE TABLE IF NOT EXISTS quota_counts (name TEXT NOT NULL, window_start BIGINT NOT NULL,
                                               value BIGINT NOT NULL, PRIMARY KEY (name, window_start));)",
    // Issue 26: a copy's outcomes as events (pg_events.cpp); by time for retention.
    R"(ALTER TABLE events ADD COLUMN IF NOT EXISTS queue_id TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN IF NOT EXISTS copy_index BIGINT NOT NULL DEFAULT -1;
       ALTER TABLE events ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN IF NOT EXISTS detail TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT '';
       ALTER TABLE events ADD COLUMN IF NOT EXISTS upstream_id TEXT NOT NULL DEFAULT '';
       CREATE INDEX IF NOT EXISTS events_by_time ON events (time);)",
};

/// Held by each migration step's transaction (released at its end; a
/// transaction-level lock works through PgBouncer's transaction pooling).
constexpr const char* migration_lock = "SELECT pg_advisory_xact_lock(7262389440140181299)";

class PgStore final : public Store {
 public:
  PgStore(const std::string& url, const std::string& schema)
      : db_(url, schema), bulk_{PgConnection(url, schema), PgConnection(url, schema)}, erasure_(url, schema) {}

  bool open(std::string& error) {
    try {
      db_.open();
      migrate();
      return true;
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
  }

  std::optional<std::string> uid_for(const std::string& address) override {
    return run<std::string>([&](pqxx::work& w) { return pg::uid_in(w, address); });
  }

  std::optional<std::string> address_of(const std::string& uid) override {
    auto r = run<std::optional<std::string>>([&](pqxx::work& w) -> std::optional<std::string> {
      auto res = w.exec_params("SELECT address FROM contacts WHERE uid = $1", uid);
      if (res.empty()) return std::nullopt;
      return res[0][0].as<std::string>();
    });
    return r ? *r : std::nullopt;
  }

  bool record_launch(const std::string& launch, const std::string& email_id, long long now, const std::string& kind,
                     const std::string& sender) override {
    return run<bool>([&](pqxx::work& w) {
             w.exec_params("INSERT INTO launches (launch_list_id, email_id, created, kind, sender) VALUES ($1, $2, $3, "
                           "$4, $5) ON CONFLICT (launch_list_id) DO NOTHING",
                           launch, email_id, now, kind, sender);
             return true;
           })
        .value_or(false);
  }

  std::optional<std::vector<std::string>> sends_and_uids(const std::vector<Send>& sends,
                                                         const std::vector<std::string>& addresses) override {
    return run<std::vector<std::string>>([&](pqxx::work& w) {
      record_sends_in(w, sends);
      std::vector<std::string> out;
      for (const auto& a : addresses) out.push_back(pg::uid_in(w, a));
      return out;
    });
  }

  static void record_sends_in(pqxx::work& w, const std::vector<Send>& sends) {
    // Before the send records: a deferral is the copy's first when its record does not say
    // deferred yet. All the events in one statement: no round trip per copy.
    std::vector<const Event*> events;
    for (const auto& x : sends) {
      if (x.event) events.push_back(&*x.event);
    }
    pg::insert_outcomes(w, events);
    for (const auto& x : sends) {
      w.exec_params(
          "INSERT INTO sends (launch_list_id, uid, queue_id, upstream_id, status, updated, last_reply, "
          "after_optout) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (launch_list_id, uid) DO UPDATE "
          "SET queue_id = excluded.queue_id, upstream_id = excluded.upstream_id, status = excluded.status, "
          "updated = excluded.updated, last_reply = excluded.last_reply, "
          "after_optout = GREATEST(sends.after_optout, excluded.after_optout)",
          x.launch_list_id, x.uid, x.queue_id, x.upstream_id, std::string(name(x.status)), x.time,
          x.last_reply.substr(0, 500), x.after_optout ? 1LL : 0LL);
    }
  }

  bool take_lease(const std::string& name, const std::string& holder, long long now, long long ttl) override {
    return run<bool>([&](pqxx::work& w) {
             const auto r = w.exec_params(
                 "INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE "
                 "SET holder = excluded.holder, expires = excluded.expires "
                 "WHERE leases.holder = excluded.holder OR leases.expires < $4 RETURNING holder",
                 name, holder, now + ttl, now);
             return !r.empty();
           })
        .value_or(false);
  }

  std::optional<long long> cursor(const std::string& name) override {
    return run<long long>([&](pqxx::work& w) {
      const auto r = w.exec_params("SELECT value FROM cursors WHERE name = $1", name);
      return r.empty() ? -1LL : r[0][0].as<long long>();
    });
  }

  bool set_cursor(const std::string& name, long long value) override {
    return run<bool>([&](pqxx::work& w) {
             w.exec_params("INSERT INTO cursors (name, value) VALUES ($1, $2) "
                           "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                           name, value);
             return true;
           })
        .value_or(false);
  }

  bool launch_exists(const std::string& launch) override {
    return exists("SELECT 1 FROM launches WHERE launch_list_id = $1", launch, "");
  }
  bool campaign_exists(const std::string& email_id) override {
    return exists("SELECT 1 FROM launches WHERE email_id = $1 LIMIT 1", email_id, "");
  }
  bool launch_matches(const std::string& launch, const std::string& email_id) override {
    return exists("SELECT 1 FROM launches WHERE launch_list_id = $1 AND email_id = $2", launch, email_id);
  }

  bool record_events(const std::vector<Event>& events) override {
    return run<bool>([&](pqxx::work& w) {
             for (const auto& e : events) {
               w.exec_params("INSERT INTO events (uid, email_id, launch_list_id, action, source, time, ip, "
                             "user_agent, topic) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                             e.uid, e.email_id, e.launch_list_id, std::string(name(e.action)), e.source, e.time,
                             e.ip.substr(0, 64), e.user_agent.substr(0, 300), e.topic);
               pg::apply_event(w, e);  // the suppression list changes in the same transaction
             }
             return true;  // all committed (and so durable) before run() returns, or none
           })
        .value_or(false);
  }

  std::optional<bool> unsubscribed(const std::string& uid, const std::string& email_id) override {
    const auto now = static_cast<long long>(std::time(nullptr));
    return run<bool>([&](pqxx::work& w) { return pg::unsubscribed(w, uid, email_id, now); });
  }

  std::optional<std::vector<Suppression>> suppressions_for(const std::vector<std::string>& addresses,
                                                          long long now) override {
    return run<std::vector<Suppression>>([&](pqxx::work& w) { return pg::suppressions_for(w, addresses, now); });
  }
  std::optional<SuppressionPage> list_suppressions(const SuppressionQuery& q, long long now) override {
    return run<SuppressionPage>([&](pqxx::work& w) { return pg::list_suppressions(w, q, now); });
  }
  /// An import keeps two batches in flight (suppression/manage.hpp): each
  /// runs on a connection of its own, so two server processes share the
  /// work, and the relay's own calls on db_ never wait behind a batch.
  std::optional<std::size_t> add_suppressions(const std::vector<Suppression>& entries, long long now) override {
    auto& db = bulk_[next_bulk_++ % std::size(bulk_)];
    auto out = db.run<std::size_t>([&](pqxx::work& w) { return pg::add_suppressions(w, entries, now); });
    if (!out) remember_failure(&db);
    return out;
  }
  std::size_t import_writers() const override { return std::size(bulk_); }
  std::optional<std::size_t> lift_suppressions(const std::string& address, const std::string& topic,
                                               const std::string& source, long long now) override {
    return run<std::size_t>([&](pqxx::work& w) { return pg::lift_suppressions(w, address, topic, source, now); });
  }
  bool suppress(const Suppression& entry) override {
    return run<bool>([&](pqxx::work& w) {
             pg::upsert(w, entry);
             return true;
           })
        .value_or(false);
  }
  std::optional<FeedbackOutcome> record_feedback(const Feedback& report, const FeedbackPolicy& policy) override {
    return run<FeedbackOutcome>([&](pqxx::work& w) { return pg::record_feedback(w, report, policy); });
  }
  std::optional<std::vector<SentCopy>> sent_copies(const std::string& upstream_id) override {
    return run<std::vector<SentCopy>>([&](pqxx::work& w) { return pg::sent_copies(w, upstream_id); });
  }
  std::optional<std::string> launch_sender(const std::string& launch) override {
    return run<std::string>([&](pqxx::work& w) {
      const auto r = w.exec_params("SELECT sender FROM launches WHERE launch_list_id = $1", launch);
      return r.empty() ? std::string() : r[0][0].as<std::string>();
    });
  }
  bool record_unverified(const UnverifiedReport& report, const UnverifiedBounds& bounds) override {
    return run<bool>([&](pqxx::work& w) { return pg::record_unverified(w, report, bounds); }).value_or(false);
  }
  std::optional<UnverifiedTally> unverified_tally() override {
    return run<UnverifiedTally>([&](pqxx::work& w) { return pg::unverified_tally(w); });
  }
  std::optional<ForwardClaim> claim_forward(const std::string& dedup_key, const std::string& sender,
                                            const std::string& owner, long long now, unsigned per_hour) override {
    return run<ForwardClaim>(
        [&](pqxx::work& w) { return pg::claim_forward(w, dedup_key, sender, owner, now, per_hour); });
  }
  std::optional<FeedbackWindow> feedback_window(long long since) override {
    return run<FeedbackWindow>([&](pqxx::work& w) { return pg::feedback_window(w, since); });
  }

  std::optional<Summary> summary(const std::string& email_id, const std::string& launch) override {
    return run<Summary>([&](pqxx::work& w) { return summarise(w, email_id, launch); });
  }

  std::optional<std::vector<LaunchSummary>> launches(const std::string& email_id, const std::string& launch) override {
    return run<std::vector<LaunchSummary>>([&](pqxx::work& w) {
      std::vector<LaunchSummary> out;
      auto r = w.exec_params("SELECT email_id, launch_list_id, created, kind FROM launches WHERE ($1 = '' OR "
                             "email_id = $1) AND ($2 = '' OR launch_list_id = $2) ORDER BY created DESC, "
                             "launch_list_id LIMIT 10000",
                             email_id, launch);
      for (const auto& row : r) {
        LaunchSummary l{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<long long>(),
                        row[3].as<std::string>(), {}};
        l.counts = summarise(w, l.email_id, l.launch_list_id);
        out.push_back(std::move(l));
      }
      return out;
    });
  }

  std::optional<std::vector<StoredEvent>> events_since(long long since, long long after_id,
                                                       std::size_t limit) override {
    return run<std::vector<StoredEvent>>([&](pqxx::work& w) { return pg::events_since(w, since, after_id, limit); });
  }
  std::optional<std::size_t> purge_events(long long cutoff, std::size_t batch) override {
    return run<std::size_t>([&](pqxx::work& w) { return pg::purge_events(w, cutoff, batch); });
  }

  std::optional<std::size_t> purge_batch_launches(long long cutoff, std::size_t batch) override {
    return run<std::size_t>([&](pqxx::work& w) {
      auto ids = w.exec_params("SELECT launch_list_id FROM launches WHERE kind = 'batch' AND created < $1 LIMIT $2",
                               cutoff, static_cast<long long>(batch));
      for (const auto& row : ids) {
        const auto id = row[0].as<std::string>();
        w.exec_params("DELETE FROM sends WHERE launch_list_id = $1", id);
        w.exec_params("DELETE FROM launches WHERE launch_list_id = $1", id);
      }
      return static_cast<std::size_t>(ids.size());
    });
  }

  bool add_quota_counts(const std::vector<QuotaCount>& adds, long long expire_before) override {
    return run<bool>([&](pqxx::work& w) {
             pg::add_quota_counts(w, adds, expire_before);
             return true;
           })
        .value_or(false);
  }
  std::optional<std::vector<long long>> quota_counts(const std::vector<QuotaCount>& keys) override {
    return run<std::vector<long long>>([&](pqxx::work& w) { return pg::quota_counts(w, keys); });
  }

  std::optional<ContactRecord> contact(const std::string& address) override {
    return run<ContactRecord>([&](pqxx::work& w) { return pg::contact(w, address); });
  }
  std::optional<ContactPage> contact_page(const std::string& address, const ContactPageQuery& query) override {
    return run<ContactPage>([&](pqxx::work& w) { return pg::contact_page(w, address, query); });
  }

  std::optional<EraseOutcome> erase_contact(const std::string& address, const std::string& hashed,
                                            const std::string& source, long long now) override {
    std::vector<std::string> touched;
    long long xid = 0;
    // On a connection of its own, as its compaction: the relay's deliveries
    // and one-clicks on db_ never wait for either (compaction.hpp).
    auto out = erasure_.run<EraseOutcome>([&](pqxx::work& w) {
      xid = w.exec("SELECT txid_current()")[0][0].as<long long>();
      return pg::erase_contact(w, address, hashed, source, now, touched);
    });
    if (!out) remember_failure(&erasure_);
    if (!out || !out->found) return out;
    out->compact_note = compactions_.after(touched, xid, [this](const Compactions::Batch& batch) {
      return pg::compact(erasure_, batch);
    });
    out->compacted = out->compact_note.empty();
    return out;
  }

  std::optional<std::size_t> lift_erased(const std::vector<std::string>& hashed, const std::string& topic,
                                         const std::string& source, long long now) override {
    return run<std::size_t>([&](pqxx::work& w) { return pg::lift_erased(w, hashed, topic, source, now); });
  }

  bool healthy() override {
    return run<bool>([](pqxx::work& w) { return !w.exec("SELECT 1").empty(); }).value_or(false);
  }

  std::string last_error() const override {
    std::lock_guard lock(failed_mutex_);
    return failed_->last_error();
  }

 private:
  void migrate() {
    {
      pqxx::work w(db_.connection());
      w.exec(migration_lock);
      w.exec("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)");
      w.commit();
    }
    for (std::size_t v = 0; v < std::size(pg_migrations); ++v) {
      // Safe to race with another relay starting: each step holds the
      // migration lock (two concurrent CREATE TABLE IF NOT EXISTS can both
      // try to create the table: a unique violation in pg_type), every
      // statement is IF NOT EXISTS, and the version row is an upsert.
      for (int attempt = 0;; ++attempt) {
        try {
          pqxx::work w(db_.connection());
          w.exec(migration_lock);
          auto done = w.exec_params("SELECT 1 FROM schema_version WHERE version = $1", static_cast<long long>(v + 1));
          if (!done.empty()) break;
          w.exec(pg_migrations[v]);
          w.exec_params("INSERT INTO schema_version (version) VALUES ($1) ON CONFLICT (version) DO NOTHING",
                        static_cast<long long>(v + 1));
          w.commit();
          break;
        } catch (const pqxx::sql_error&) {
          if (attempt >= 2) throw;
        }
      }
    }
  }

  Summary summarise(pqxx::work& w, const std::string& email_id, const std::string& launch) {
    Summary out;
    auto r = w.exec_params("SELECT s.status, COUNT(*) FROM sends s JOIN launches l ON l.launch_list_id = "
                           "s.launch_list_id WHERE l.email_id = $1 AND ($2 = '' OR l.launch_list_id = $2) GROUP BY "
                           "s.status",
                           email_id, launch);
    for (const auto& row : r) {
      const auto status = row[0].as<std::string>();
      const auto n = row[1].as<std::uint64_t>();
      if (status != "suppressed") out.sent += n;
      if (status == "delivered") out.delivered += n;
      if (status == "deferred" || status == "queued") out.deferred += n;
      if (status == "bounced") out.bounced += n;
      if (status == "suppressed") out.suppressed += n;
    }
    auto u = w.exec_params("SELECT COUNT(DISTINCT uid) FROM events WHERE email_id = $1 AND ($2 = '' OR "
                           "launch_list_id = $2) AND action = 'unsubscribe'",
                           email_id, launch);
    out.unsubscribed = u[0][0].as<std::uint64_t>();
    pg::feedback_summary(w, email_id, launch, out);
    return out;
  }

  bool exists(const char* sql, const std::string& a, const std::string& b) {
    return run<bool>([&](pqxx::work& w) {
             const std::string query(sql);
             auto r = query.find("$2") == std::string::npos ? w.exec_params(query, a) : w.exec_params(query, a, b);
             return !r.empty();
           })
        .value_or(false);
  }

  template <typename T, typename F>
  std::optional<T> run(F&& f) {
    auto out = db_.template run<T>(std::forward<F>(f));
    if (!out) remember_failure(&db_);
    return out;
  }

  void remember_failure(const PgConnection* db) {
    std::lock_guard lock(failed_mutex_);
    failed_ = db;
  }

  PgConnection db_;
  PgConnection bulk_[2];  // add_suppressions only, connected on first use
  std::atomic<unsigned> next_bulk_{0};
  PgConnection erasure_;  // erasures only (their transaction and compaction), connected on first use
  Compactions compactions_;
  mutable std::mutex failed_mutex_;
  const PgConnection* failed_ = &db_;  // the connection whose error last_error() reports
};

}  // namespace

namespace pg {

std::string uid_in(pqxx::work& w, const std::string& address) {
  const auto key = normalise_address(address);
  auto r = w.exec_params("SELECT uid FROM contacts WHERE address = $1", key);
  if (!r.empty()) return r[0][0].as<std::string>();
  const auto uid = token::random_uid_text();
  if (!uid) throw std::runtime_error("RAND_bytes failed");
  // Two relays may meet the same new address at once: the first insert wins, both read it back.
  w.exec_params("INSERT INTO contacts (uid, address, created) VALUES ($1, $2, $3) ON CONFLICT (address) DO NOTHING",
                *uid, key, static_cast<long long>(std::time(nullptr)));
  return w.exec_params("SELECT uid FROM contacts WHERE address = $1", key)[0][0].as<std::string>();
}

}  // namespace pg

std::unique_ptr<Store> open_postgresql(const std::string& url, std::string& error, const std::string& schema) {
  auto store = std::make_unique<PgStore>(url, schema);
  if (!store->open(error)) {
    // The URL may carry a password: name only what failed.
    error = "store postgresql: " + error;
    return nullptr;
  }
  return store;
}

}  // namespace unsubrelay::store
