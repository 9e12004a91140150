// contact.hpp: personal data (SPEC Part 2, "Personal data"; issue 13 point 6):
// everything the store holds about one address, and its erasure.
//
// Erasing an address removes it, and the IPs and user agents of its events,
// from every table. Its active suppression entries survive as entries whose
// address is a keyed hash of the normalised address ("erased:keyid:HEX"),
// so mail to it stays suppressed: the send-time check looks the hashed forms
// up in the same query as the plain address. The hash key is derived from
// each key of unsubscribe.keys_file; every key of the set is tried, so a
// rotation keeps erased entries working while the old key stays listed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/store/feedback.hpp"
#include "unsubrelay/store/suppression.hpp"

namespace unsubrelay::token {
class KeySet;
}

namespace unsubrelay::store {

/// The keyed hashes of erased addresses. Without keys nothing is hashed or found.
class ErasureKeys {
 public:
  ErasureKeys() = default;
  /// One hash key per token key: HMAC-SHA256(secret, "unsubrelay erased address v1").
  explicit ErasureKeys(const token::KeySet& keys);

  bool empty() const { return keys_.empty(); }
  std::size_t size() const { return keys_.size(); }
  /// "erased:keyid:" + hex(HMAC-SHA256(key, normalised address)), with the first key
  /// (all lower case, as the store keeps addresses).
  std::string hash(std::string_view address) const;
  /// The address's hashed form under every key (what a lookup must try).
  std::vector<std::string> forms(std::string_view address) const;
  /// True for an entry address that is a hash, not an address.
  static bool is_hash(std::string_view address) { return address.starts_with(prefix); }
  /// The key id a hashed form names ("" when it is not one).
  static std::string key_id(std::string_view hashed);

  static constexpr std::string_view prefix = "erased:";

 private:
  struct Key {
    std::string prefix;  // "erased:keyid:", the id folded to lower case
    std::string secret;
  };
  static std::string form(const Key& key, std::string_view address);
  std::vector<Key> keys_;
};

/// One campaign copy recorded for the contact.
struct ContactSend {
  std::string email_id;  // from the launch; "" when the launch was purged
  std::string launch_list_id;
  std::string queue_id;
  std::string upstream_id;
  std::string status;
  long long time = 0;
  std::string last_reply;
  bool after_optout = false;
};

/// One subscription event of the contact, as stored (with its IP and user agent).
struct ContactEvent {
  long long id = 0;
  std::string action;
  std::string source;
  long long time = 0;
  std::string email_id;
  std::string launch_list_id;
  std::string topic;
  std::string ip;
  std::string user_agent;
};

/// Everything held about an address.
struct ContactRecord {
  std::string address;  // normalised
  std::string uid;      // "" when there is no contact row
  long long created = 0;
  std::vector<ContactSend> sends;
  std::vector<ContactEvent> events;
  std::vector<Suppression> suppressions;  // every entry of the address, lifted and expired ones too
  std::vector<Feedback> feedback;

  bool empty() const { return uid.empty() && suppressions.empty() && feedback.empty(); }
};

/// What an erasure did.
struct EraseOutcome {
  bool found = false;         // something was held (else nothing changed)
  std::string uid;            // the erased contact's uid; "" when there was none
  std::string hashed;         // the keyed hash the kept entries are filed under
  std::size_t kept = 0;       // active suppression entries kept as hashes
  std::size_t events = 0;     // events whose IP and user agent were cleared
  std::size_t feedback = 0;   // bounce and complaint rows anonymised
  bool compacted = false;     // the freed bytes were overwritten or rewritten (docs/suppression.md)
  std::string compact_note;   // why not, when not
};

/// The event an erasure records (action "erase"): it names the uid, or the
/// hash when there was no contact, never the address.
inline std::string erase_subject(const EraseOutcome& o) { return o.uid.empty() ? o.hashed : o.uid; }

}  // namespace unsubrelay::store
