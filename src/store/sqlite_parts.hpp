// sqlite_parts.hpp: the SQLite store's concerns, one file each (private to src/store).
//
// SqliteStore (sqlite_store.cpp) forwards its Store methods here. Functions
// named *_locked expect the caller to hold db.mutex_ (and usually a
// transaction); the others take the lock themselves.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sqlite_db.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::store::sqlite {

// sqlite_store.cpp
std::optional<std::string> uid_locked(SqliteDb& db, const std::string& address);

// sqlite_suppression.cpp
bool upsert_locked(SqliteDb& db, const Suppression& entry);
/// The suppression list change an unsubscribe or resubscribe event makes.
bool apply_event_locked(SqliteDb& db, const Event& event);
std::optional<std::vector<Suppression>> suppressions_for(SqliteDb& db, const std::vector<std::string>& addresses,
                                                        long long now);
bool suppress(SqliteDb& db, const Suppression& entry);
std::optional<bool> unsubscribed(SqliteDb& db, const std::string& uid, const std::string& email_id, long long now);

// sqlite_suppression_list.cpp (suppression_list.hpp)
std::optional<SuppressionPage> list_suppressions(SqliteDb& db, const SuppressionQuery& query, long long now);
std::optional<std::size_t> add_suppressions(SqliteDb& db, const std::vector<Suppression>& entries, long long now);
std::optional<std::size_t> lift_suppressions(SqliteDb& db, const std::string& address, const std::string& topic,
                                             const std::string& source, long long now);

// sqlite_contact.cpp (contact.hpp)
std::optional<ContactRecord> contact(SqliteDb& db, const std::string& address);
// sqlite_contact_page.cpp (contact_page.hpp)
std::optional<ContactPage> contact_page(SqliteDb& db, const std::string& address, const ContactPageQuery& query);
/// A page's rows into `out` (out.address set), in the caller's transaction under the lock; every_row() for all.
bool read_page_locked(SqliteDb& db, const ContactPageQuery& query, ContactRecord& out,
                      std::vector<long long>& feedback_ids);
// sqlite_contact.cpp: an address's suppression entries, under the lock.
bool read_suppressions_locked(SqliteDb& db, ContactRecord& out);
std::optional<EraseOutcome> erase_contact(SqliteDb& db, const std::string& address, const std::string& hashed,
                                          const std::string& source, long long now);
std::optional<std::size_t> lift_erased(SqliteDb& db, const std::vector<std::string>& hashed, const std::string& topic,
                                       const std::string& source, long long now);

// sqlite_feedback.cpp
std::optional<FeedbackOutcome> record_feedback(SqliteDb& db, const Feedback& report, const FeedbackPolicy& policy);
std::optional<std::vector<SentCopy>> sent_copies(SqliteDb& db, const std::string& upstream_id);
std::optional<FeedbackWindow> feedback_window(SqliteDb& db, long long since);
/// Adds the Part 2 counts of one campaign (or launch) to out; false when the store failed.
bool feedback_summary_locked(SqliteDb& db, const std::string& email_id, const std::string& launch, Summary& out);

// sqlite_feedback_guard.cpp (issue 22)
bool record_unverified(SqliteDb& db, const UnverifiedReport& report, const UnverifiedBounds& bounds);
std::optional<UnverifiedTally> unverified_tally(SqliteDb& db);
std::optional<ForwardClaim> claim_forward(SqliteDb& db, const std::string& dedup_key, const std::string& sender,
                                          const std::string& owner, long long now, unsigned per_hour);

// sqlite_events.cpp (issue 26, docs/events.md)
/// A copy's outcome event (a deferred one only when its send record is not deferred already).
bool insert_outcome_locked(SqliteDb& db, const Event& event);
/// The outcome event of a new bounce or complaint row (none when it names no contact).
bool insert_feedback_event_locked(SqliteDb& db, const Feedback& report);
std::optional<std::vector<StoredEvent>> events_since(SqliteDb& db, long long since, long long after_id,
                                                     std::size_t limit);
std::optional<std::size_t> purge_events(SqliteDb& db, long long cutoff, std::size_t batch);

// sqlite_quota.cpp (issue 24)
bool add_quota_counts(SqliteDb& db, const std::vector<QuotaCount>& adds, long long expire_before);
std::optional<std::vector<long long>> quota_counts(SqliteDb& db, const std::vector<QuotaCount>& keys);

}  // namespace unsubrelay::store::sqlite
