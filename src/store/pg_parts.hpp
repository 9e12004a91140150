// pg_parts.hpp: the PostgreSQL store's concerns, one file each (private to src/store).
//
// PgStore (pg_store.cpp) forwards its Store methods here. Each function
// takes the open transaction of PgConnection::run(); nothing here commits.
#pragma once

#include <pqxx/pqxx>

#include <string>
#include <vector>

#include "compaction.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::store {
class PgConnection;
}

namespace unsubrelay::store::pg {

// pg_store.cpp
std::string uid_in(pqxx::work& w, const std::string& address);

// pg_suppression.cpp
/// The DO UPDATE SET clause of the suppression upsert (ON CONFLICT (address, scope, scope_value)).
extern const char* const upsert_update_sql;
void upsert(pqxx::work& w, const Suppression& entry);
/// The suppression list change an unsubscribe or resubscribe event makes.
void apply_event(pqxx::work& w, const Event& event);
std::vector<Suppression> suppressions_for(pqxx::work& w, const std::vector<std::string>& addresses, long long now);
bool unsubscribed(pqxx::work& w, const std::string& uid, const std::string& email_id, long long now);

// pg_suppression_list.cpp (suppression_list.hpp)
/// The event of one entry's change (the scope's campaign or topic).
void insert_event(pqxx::work& w, const std::string& uid, const Suppression& entry, Action action,
                  const std::string& source, long long now);
SuppressionPage list_suppressions(pqxx::work& w, const SuppressionQuery& query, long long now);
std::size_t lift_suppressions(pqxx::work& w, const std::string& address, const std::string& topic,
                              const std::string& source, long long now);

// pg_suppression_import.cpp
std::size_t add_suppressions(pqxx::work& w, const std::vector<Suppression>& entries, long long now);

// pg_contact.cpp (contact.hpp)
ContactRecord contact(pqxx::work& w, const std::string& address);
// pg_contact_page.cpp (contact_page.hpp)
ContactPage contact_page(pqxx::work& w, const std::string& address, const ContactPageQuery& query);
/// The erasure's writes; touched: the tables whose old tuples now hold its bytes.
EraseOutcome erase_contact(pqxx::work& w, const std::string& address, const std::string& hashed,
                           const std::string& source, long long now, std::vector<std::string>& touched);
std::size_t lift_erased(pqxx::work& w, const std::vector<std::string>& hashed, const std::string& topic,
                        const std::string& source, long long now);
/// Rewrites the tables erasures touched, on db (a connection of its own, never the
/// mail path's), once no transaction older than batch.horizon is open; "" when the
/// bytes are gone, else why not. Sets nothing on the session (PgBouncer).
std::string compact(PgConnection& db, const Compactions::Batch& batch);

// pg_events.cpp (issue 26, docs/events.md)
/// A copy's outcome event (a deferred one only when its send record is not deferred already).
void insert_outcome(pqxx::work& w, const Event& event);
/// insert_outcome for many events in one statement (one round trip), in order.
void insert_outcomes(pqxx::work& w, const std::vector<const Event*>& events);
/// The outcome event of a new bounce or complaint row (none when it names no contact).
void insert_feedback_event(pqxx::work& w, const Feedback& report);
std::vector<StoredEvent> events_since(pqxx::work& w, long long since, long long after_id, std::size_t limit);
std::size_t purge_events(pqxx::work& w, long long cutoff, std::size_t batch);

// pg_feedback.cpp
FeedbackOutcome record_feedback(pqxx::work& w, const Feedback& report, const FeedbackPolicy& policy);
std::vector<SentCopy> sent_copies(pqxx::work& w, const std::string& upstream_id);
FeedbackWindow feedback_window(pqxx::work& w, long long since);
/// Adds the Part 2 counts of one campaign (or launch) to out.
void feedback_summary(pqxx::work& w, const std::string& email_id, const std::string& launch, Summary& out);

// pg_feedback_guard.cpp (issue 22)
bool record_unverified(pqxx::work& w, const UnverifiedReport& report, const UnverifiedBounds& bounds);
UnverifiedTally unverified_tally(pqxx::work& w);
ForwardClaim claim_forward(pqxx::work& w, const std::string& dedup_key, const std::string& sender,
                           const std::string& owner, long long now, unsigned per_hour);

// pg_quota.cpp (issue 24)
void add_quota_counts(pqxx::work& w, const std::vector<QuotaCount>& adds, long long expire_before);
std::vector<long long> quota_counts(pqxx::work& w, const std::vector<QuotaCount>& keys);

}  // namespace unsubrelay::store::pg
