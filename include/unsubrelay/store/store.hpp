// store.hpp: launch-list metadata, contacts and subscription events.
//
// One interface, backends one per file (OpenSMTPD's queue_backend.c):
// sqlite_store.cpp now; PostgreSQL for a fleet later. Calls are thread-safe.
// Expected failures (a locked or broken database) are values: false or
// nullopt, with the reason in last_error(), so mail keeps flowing and the
// HTTP service can answer 503.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/store/contact.hpp"
#include "unsubrelay/store/contact_page.hpp"
#include "unsubrelay/store/feedback.hpp"
#include "unsubrelay/store/suppression.hpp"
#include "unsubrelay/store/suppression_list.hpp"

namespace unsubrelay::store {

enum class SendStatus { queued, delivered, deferred, bounced, suppressed };
const char* name(SendStatus s);

/// erase: the contact's personal data was erased (contact.hpp); the event names
/// its uid (or the keyed hash), never the address. The others after it are a
/// copy's outcomes (issue 26, docs/events.md): written with the copy's send
/// record (delivery) or with its bounce or complaint row (feedback), never
/// through record_events, and they change no suppression entry themselves.
enum class Action { unsubscribe, resubscribe, erase, delivered, deferred, bounced, blocked, complaint, suppressed };
const char* name(Action a);  // "unsubscribe" | … | "suppressed": stored, exported, posted
Action parse_action(std::string_view text);
/// The action a name means; nullopt for any other word (configuration, --events, ?types=).
std::optional<Action> action_named(std::string_view text);
/// unsubscribe, resubscribe, erase: what receivers and export got before issue 26.
inline bool subscription_event(Action a) {
  return a == Action::unsubscribe || a == Action::resubscribe || a == Action::erase;
}

struct Event {
  std::string uid;
  std::string email_id;
  std::string launch_list_id;
  Action action = Action::unsubscribe;
  std::string source;  // one-click | page | api | mailto
  long long time = 0;
  std::string ip;
  std::string user_agent;
  /// What a resubscribe lifts, as unsubscribed() scopes it: "" = every
  /// campaign entry of the contact (suppression: global), an email_id = that
  /// campaign's entry and the all-campaigns ones (suppression: campaign).
  std::string resubscribe_scope;
  /// The topic the change is about (issue 13): an unsubscribe adds that topic's
  /// entry, a resubscribe lifts it; "" = not about one topic.
  std::string topic;
  // A copy's outcome (docs/events.md lists which field means what per action).
  std::string queue_id;     // the message's queue id; "" when unknown (a DSN whose copy was purged)
  long long copy = -1;      // the recipient's index in the message; -1 when unknown
  std::string status;       // enhanced status ("5.1.1"), or the complaint's feedback type
  std::string detail;       // the upstream's reply, the diagnostic, or the suppression's reason
  std::string kind;         // bounced: hard | soft; suppressed: the suppression's scope
  std::string upstream_id;  // delivered: the upstream's message id (SES)
};

/// The event a new bounce or complaint report makes for the contact uid
/// (both backends' record_feedback; the queue id is theirs to look up).
Event feedback_event(const Feedback& f, const std::string& uid);

struct Send {
  std::string launch_list_id;
  std::string uid;
  std::string queue_id;
  std::string upstream_id;
  SendStatus status = SendStatus::queued;
  long long time = 0;
  std::string last_reply;
  /// Handed upstream although an opt-out that applies to it was recorded
  /// before (a render that raced the opt-out): sent_after_optout.
  bool after_optout = false;
  /// The copy's outcome event, written in the same transaction (issue 26): no
  /// store round trip of its own. A deferred one is written only when the
  /// copy's previous send record was not deferred already (first deferral).
  std::optional<Event> event;
};

struct Summary {
  std::uint64_t sent = 0;  // recipients (copies handed to delivery)
  std::uint64_t delivered = 0;
  std::uint64_t deferred = 0;
  std::uint64_t bounced = 0;
  std::uint64_t suppressed = 0;
  std::uint64_t unsubscribed = 0;  // unique contacts
  // Part 2 (unique contacts per kind; SPEC "Statistics and compliance evidence").
  std::uint64_t hard_bounced = 0;
  std::uint64_t soft_bounced = 0;
  std::uint64_t blocked = 0;
  std::uint64_t complaints = 0;
  std::uint64_t sent_after_optout = 0;  // copies
  double complaint_rate() const {
    return delivered ? static_cast<double>(complaints) / static_cast<double>(delivered) : 0.0;
  }
};

struct LaunchSummary {
  std::string email_id;
  std::string launch_list_id;
  long long created = 0;
  std::string kind;  // batch | on-event
  Summary counts;
};

/// The mail a send-time suppression check is for (COORD.md design decision 2).
struct SendScope {
  bool campaign = false;     // false: transactional mail
  std::string email_id;      // the campaign, when campaign
  std::string launch_list_id;
  std::string topic;         // the message's topic (issue 13); empty: none
  config::Suppression mode = config::Suppression::global;  // unsubscribe.suppression
};

/// One recipient of that mail.
struct SendRecipient {
  std::string address;
  std::string uid;  // the contact's uid; empty when none was looked up (transactional mail)
};

/// May this recipient be sent this mail? When not, why (for the log and the sends table).
struct SendVerdict {
  bool suppressed = false;
  std::string reason;  // when suppressed: "unsubscribed", or e.g. "hard_bounce from dsn on 2026-11-29"
  bool erased = false;  // stopped by an erased address's hashed entry: record nothing about it
};

/// A named count in one time window (SPEC Part 3 quotas: "messages" per clock
/// hour, "recipients" per UTC day, each window named by its first second).
/// The store holds it so every relay of a fleet on one database shares it.
struct QuotaCount {
  std::string name;
  long long window = 0;
  long long value = 0;
};

/// One stored event, with its storage id for paging, and the contact's
/// address read with it ("" once the contact was erased, or for none).
struct StoredEvent {
  long long id = 0;
  Event event;
  std::string address;
};

class Store {
 public:
  virtual ~Store() = default;

  /// The contact's uid: random, unguessable, created on first sight, stable after.
  virtual std::optional<std::string> uid_for(const std::string& address) = 0;
  /// uid_for for a whole recipient list in one transaction (one fsync, not one per new contact).
  std::optional<std::vector<std::string>> uids_for(const std::vector<std::string>& addresses) {
    return sends_and_uids({}, addresses);
  }
  virtual std::optional<std::string> address_of(const std::string& uid) = 0;

  /// sender: the message's envelope sender, where forward_to_sender passes reports on.
  virtual bool record_launch(const std::string& launch_list_id, const std::string& email_id, long long now,
                             const std::string& kind = "batch", const std::string& sender = "") = 0;
  bool record_sends(const std::vector<Send>& sends) { return sends_and_uids(sends, {}).has_value(); }
  /// record_sends and uids_for in one transaction (one sync for both: DeliveryRecorder's
  /// group commit gathers the attempts starting and the attempts ending). The uids, or nullopt.
  virtual std::optional<std::vector<std::string>> sends_and_uids(const std::vector<Send>& sends,
                                                                 const std::vector<std::string>& addresses) = 0;
  virtual bool launch_exists(const std::string& launch_list_id) = 0;
  virtual bool campaign_exists(const std::string& email_id) = 0;
  virtual bool launch_matches(const std::string& launch_list_id, const std::string& email_id) = 0;

  /// Written durably before it returns true, with its suppression list change
  /// (an unsubscribe adds the email_id's entry, a resubscribe lifts entries).
  bool record_event(const Event& event) { return record_events({event}); }
  /// record_event() for several events in one transaction, applied in order:
  /// all of them with their suppression list changes, or (false) none. The
  /// preference form's changes are one such call.
  virtual bool record_events(const std::vector<Event>& events) = 0;
  /// True when an active entry stops the contact's campaign mail: any
  /// campaign entry when email_id is empty (suppression: global), else that
  /// email_id's or an all-campaigns entry.
  virtual std::optional<bool> unsubscribed(const std::string& uid, const std::string& email_id) = 0;
  /// The send-time check: one call per message for all its pending recipients,
  /// one verdict each in order; nullopt when the store failed (the copies wait).
  /// One suppressions_for() call, then store::applicable_to() per recipient:
  /// bounce entries stop all mail, transactional included; the others only
  /// campaign mail, as unsubscribe.suppression scopes them (suppression.hpp).
  std::optional<std::vector<SendVerdict>> check_suppression(const SendScope& scope,
                                                            const std::vector<SendRecipient>& recipients);

  /// The send-time check: every active entry of these addresses (any case),
  /// in one call for a whole message (design decision 2).
  virtual std::optional<std::vector<Suppression>> suppressions_for(const std::vector<std::string>& addresses,
                                                                  long long now) = 0;
  /// Adds an entry or renews the one with the same address, scope and value.
  virtual bool suppress(const Suppression& entry) = 0;

  /// Records a bounce or complaint and applies it (feedback.hpp); nullopt when the store failed.
  virtual std::optional<FeedbackOutcome> record_feedback(const Feedback& report, const FeedbackPolicy& policy) = 0;
  /// The campaign copies the upstream accepted under this message id (SES's mail.messageId).
  virtual std::optional<std::vector<SentCopy>> sent_copies(const std::string& upstream_id) = 0;
  /// The envelope sender recorded with the launch: "" when none or unknown.
  virtual std::optional<std::string> launch_sender(const std::string& launch_list_id) = 0;
  /// Keeps an unverified report and prunes the table to bounds, in one transaction; false when the store failed.
  virtual bool record_unverified(const UnverifiedReport& report, const UnverifiedBounds& bounds) = 0;
  virtual std::optional<UnverifiedTally> unverified_tally() = 0;
  /// May the copy `owner` ("QUEUEID:INDEX") of the recorded report dedup_key be
  /// forwarded to sender now? A claim is kept on the report's feedback row, so
  /// it holds across restarts and for every relay sharing the store.
  virtual std::optional<ForwardClaim> claim_forward(const std::string& dedup_key, const std::string& sender,
                                                    const std::string& owner, long long now, unsigned per_hour) = 0;
  /// Complaints recorded and campaign copies delivered since `since`.
  virtual std::optional<FeedbackWindow> feedback_window(long long since) = 0;
  /// Suppression list management (suppression_list.hpp): active entries of an
  /// address, or paged by created.
  virtual std::optional<SuppressionPage> list_suppressions(const SuppressionQuery& query, long long now) = 0;
  /// Adds or renews entries in one transaction, with an unsubscribe event
  /// (the entry's source and topic) for each that was not active; how many were.
  virtual std::optional<std::size_t> add_suppressions(const std::vector<Suppression>& entries, long long now) = 0;
  /// How many add_suppressions calls the store runs at once (an import keeps
  /// that many batches in flight): one writer on SQLite.
  virtual std::size_t import_writers() const { return 1; }
  /// Lifts the address's active entries (only its `topic` entry when set),
  /// each recorded as a resubscribe event from `source`; how many.
  virtual std::optional<std::size_t> lift_suppressions(const std::string& address, const std::string& topic,
                                                       const std::string& source, long long now) = 0;
  virtual std::optional<Summary> summary(const std::string& email_id, const std::string& launch_list_id) = 0;

  /// Per launch, newest first; empty filters match everything.
  virtual std::optional<std::vector<LaunchSummary>> launches(const std::string& email_id,
                                                             const std::string& launch_list_id) = 0;
  /// Events of every action with time >= since and id > after_id, oldest
  /// first, at most limit, each with its contact's address (one query).
  virtual std::optional<std::vector<StoredEvent>> events_since(long long since, long long after_id,
                                                               std::size_t limit) = 0;
  /// Retention (store.event_retention_days): removes up to batch outcome
  /// events (never unsubscribe, resubscribe or erase: the opt-out evidence)
  /// older than cutoff, in one short transaction; how many went.
  virtual std::optional<std::size_t> purge_events(long long cutoff, std::size_t batch) = 0;
  /// Retention: removes up to batch batch-launches created before cutoff, with
  /// their sends, in one short transaction. Returns how many launches went.
  virtual std::optional<std::size_t> purge_batch_launches(long long cutoff, std::size_t batch) = 0;

  /// Fleet coordination: true while `holder` holds the named lease, which it
  /// takes when it is free or expired and renews (until now + ttl) while it
  /// holds it. Webhooks use it so that one relay of a fleet sends each event.
  virtual bool take_lease(const std::string& name, const std::string& holder, long long now, long long ttl) = 0;
  /// A named position kept in the store (a webhook's last sent event id),
  /// shared by the fleet: -1 when never set, nullopt when the store failed.
  virtual std::optional<long long> cursor(const std::string& name) = 0;
  virtual bool set_cursor(const std::string& name, long long value) = 0;

  /// Quotas: adds each entry's value to its (name, window) count, in one
  /// transaction that also deletes the windows that began before
  /// expire_before, so old windows never pile up. False when the store failed.
  virtual bool add_quota_counts(const std::vector<QuotaCount>& adds, long long expire_before) = 0;
  /// The count of each (name, window) asked, in order (0 when none); nullopt when the store failed.
  virtual std::optional<std::vector<long long>> quota_counts(const std::vector<QuotaCount>& keys) = 0;

  /// Personal data (contact.hpp): everything held about the address; an
  /// empty record when nothing is.
  virtual std::optional<ContactRecord> contact(const std::string& address) = 0;
  /// One page of it (contact_page.hpp): at most query.limit sends, events
  /// and feedback rows after the query's keys; the store reads one more of
  /// each to know whether a next page exists.
  virtual std::optional<ContactPage> contact_page(const std::string& address, const ContactPageQuery& query) = 0;
  /// Erases the address in one transaction (its active entries kept under
  /// `hashed`, an erase event from `source`), then overwrites or rewrites the
  /// freed bytes: after the commit, outside the store's lock, on a connection
  /// of its own, one compaction at a time shared by concurrent erasures, so
  /// the mail path never waits for it; the caller does (compacted, compact_note).
  /// found = false (and nothing changed) when nothing was held.
  virtual std::optional<EraseOutcome> erase_contact(const std::string& address, const std::string& hashed,
                                                    const std::string& source, long long now) = 0;
  /// erase_contact with the hash of the first erasure key; nullopt when the
  /// store failed. The caller sets the keys first (erasure_keys().empty()).
  std::optional<EraseOutcome> erase(const std::string& address, const std::string& source, long long now);
  /// Lifts the active entries kept under these hashed forms of an erased
  /// address (only its `topic` entry when set), each recorded as a
  /// resubscribe event naming the hash; how many.
  virtual std::optional<std::size_t> lift_erased(const std::vector<std::string>& hashed, const std::string& topic,
                                                 const std::string& source, long long now) = 0;
  /// lift_suppressions() and lift_erased() for the address's hashed forms:
  /// what DELETE /api/v1/suppressions/ADDRESS and `suppression remove` do.
  std::optional<std::size_t> lift(const std::string& address, const std::string& topic, const std::string& source,
                                  long long now);
  /// A single lookup: the active entries of the address and of its hashed
  /// forms (an erased address), in one query.
  std::optional<std::vector<Suppression>> suppressions_of(const std::string& address, long long now);
  /// The keys erased addresses are hashed with (the relay's unsubscribe keys).
  void set_erasure_keys(ErasureKeys keys) { erasure_keys_ = std::move(keys); }
  const ErasureKeys& erasure_keys() const { return erasure_keys_; }

  virtual bool healthy() = 0;
  virtual std::string last_error() const = 0;

 private:
  ErasureKeys erasure_keys_;
};

/// cache_mb: the page cache of the connection that writes (store.cache_mb).
std::unique_ptr<Store> open_sqlite(const std::string& path, std::string& error,
                                   unsigned cache_mb = config::Store{}.cache_mb);
/// schema: "" = the database's search_path (the tenant "default"), else a tenant's own, created when missing.
std::unique_ptr<Store> open_postgresql(const std::string& url, std::string& error, const std::string& schema = "");

/// The backend store.kind names. A tenant other than "default" (SPEC Part 3)
/// has a store of its own: SQLite a file beside store.path (tenant_path), PostgreSQL
/// a schema in the same database (tenant_schema). "default" keeps the database
/// of an installation without tenants, so its data is the tenant default's.
std::unique_ptr<Store> open(const config::Store& settings, std::string& error, const std::string& tenant = "");
/// The installation-wide suppression list that tenants with `suppression: shared`
/// honour (SPEC Part 3): a store of its own, filed by admin keys with ?tenant=*.
inline constexpr const char* shared_tenant = "*";
/// var/unsubrelay.db -> var/unsubrelay.tenant-acme.db (the shared list: var/unsubrelay.shared.db)
std::string tenant_path(const std::string& path, const std::string& tenant);
/// acme -> unsubrelay_tenant_acme ('-' becomes '_': ids have no '_', so no two collide); * -> unsubrelay_shared
std::string tenant_schema(const std::string& tenant);

}  // namespace unsubrelay::store
