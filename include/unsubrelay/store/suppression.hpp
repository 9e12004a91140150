// suppression.hpp: the suppression list, the one source of truth for "do not send".
//
// An entry names an address (lower case), a scope and why. Unsubscribes taken
// through links, one-click, the API and mailto add `campaign` entries (one
// email_id) and a resubscribe lifts them; `unsubscribe.suppression` decides at
// send time how far those reach (global: every campaign, campaign: that
// email_id, off: nowhere), exactly as Part 1 did from the events. Complaints
// add `campaigns` entries, bounces `all_mail` ones (transactional mail too).
// Lifting an entry sets its expiry to now, so its history stays.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::store {

enum class Scope {
  all_mail,   // every message, transactional included (bounces: the address does not work)
  campaigns,  // every campaign message (complaints, manual and imported entries)
  campaign,   // one email_id (scope_value); Part 1 unsubscribes, widened by suppression: global
  topic,      // one topic (scope_value)
};
const char* name(Scope s);  // "all" | "campaigns" | "campaign" | "topic": stored and shown
std::optional<Scope> parse_scope(std::string_view text);

struct Suppression {
  std::string address;      // lower case
  Scope scope = Scope::campaigns;
  std::string scope_value;  // the email_id or topic; "" for all_mail and campaigns
  std::string reason;       // unsubscribe | complaint | hard_bounce | soft_bounce | manual | import
  std::string source;       // one-click | page | api | mailto | complaint | smtp | dsn | ses | manual | import
  long long created = 0;
  long long expires = 0;    // 0 = never; active while expires == 0 || expires > now

  bool active(long long now) const { return expires == 0 || expires > now; }
};

/// What a copy is, for the send-time check.
struct CopyKind {
  bool campaign = false;  // transactional mail meets all_mail entries only
  std::string email_id;
  std::string topic;
};

/// The entry that stops this copy, or nullptr. entries: the active entries of
/// the copy's address. An all_mail entry wins, so a bounce is what the log names.
const Suppression* applicable(const std::vector<Suppression>& entries, const CopyKind& copy,
                              config::Suppression mode);

/// The same among the entries of several addresses: only those of address (normalised)
/// recorded before recorded_before count.
const Suppression* applicable_to(const std::vector<Suppression>& entries, std::string_view address,
                                 const CopyKind& copy, config::Suppression mode,
                                 long long recorded_before = std::numeric_limits<long long>::max());

/// Lower case, as addresses are kept (contacts and the suppression list).
std::string normalise_address(std::string_view address);

}  // namespace unsubrelay::store
