// contact.cpp: the keyed hash of erased addresses and the store's helpers
// around it (contact.hpp); the backends' parts are in {sqlite,pg}_contact.cpp.
#include "unsubrelay/store/contact.hpp"

#include <stdexcept>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::store {

namespace {

// Domain separation: the token MAC and the address hash never share a key.
constexpr std::string_view derivation_label = "unsubrelay erased address v1";

}  // namespace

ErasureKeys::ErasureKeys(const token::KeySet& keys) {
  for (const auto& k : keys.keys()) {
    const auto derived = token::hmac_sha256(k.secret, derivation_label);
    // Lower case throughout (hex, the key id folded): the store folds every
    // address it keeps or looks up, so the hashed form must survive that.
    keys_.push_back({std::string(prefix) + normalise_address(k.id) + ":",
                     std::string(reinterpret_cast<const char*>(derived.data()), derived.size())});
  }
}

std::string ErasureKeys::form(const Key& key, std::string_view address) {
  // Run for every recipient and key at send time: one HMAC, no formatting.
  return key.prefix + hex(token::hmac_sha256(key.secret, normalise_address(address)));
}

std::string ErasureKeys::hash(std::string_view address) const {
  return keys_.empty() ? std::string() : form(keys_.front(), address);
}

std::vector<std::string> ErasureKeys::forms(std::string_view address) const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const auto& k : keys_) out.push_back(form(k, address));
  return out;
}

std::string ErasureKeys::key_id(std::string_view hashed) {
  if (!is_hash(hashed)) return {};
  hashed.remove_prefix(prefix.size());
  const auto colon = hashed.find(':');
  return colon == std::string_view::npos ? std::string() : std::string(hashed.substr(0, colon));
}

std::optional<EraseOutcome> Store::erase(const std::string& address, const std::string& source, long long now) {
  // Without a key the kept entries could not be filed: a caller's bug, not a store failure.
  if (erasure_keys_.empty()) throw std::logic_error("store: erase without erasure keys");
  return erase_contact(normalise_address(address), erasure_keys_.hash(address), source, now);
}

std::optional<std::size_t> Store::lift(const std::string& address, const std::string& topic,
                                      const std::string& source, long long now) {
  const auto plain = lift_suppressions(address, topic, source, now);
  if (!plain || erasure_keys_.empty()) return plain;
  const auto erased = lift_erased(erasure_keys_.forms(address), topic, source, now);
  if (!erased) return std::nullopt;
  return *plain + *erased;
}

std::optional<std::vector<Suppression>> Store::suppressions_of(const std::string& address, long long now) {
  auto addresses = erasure_keys_.forms(address);
  addresses.insert(addresses.begin(), normalise_address(address));
  return suppressions_for(addresses, now);
}

}  // namespace unsubrelay::store
