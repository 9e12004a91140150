// suppression.cpp: which suppression entry stops a copy (pure, both backends share it).
#include "unsubrelay/store/suppression.hpp"

#include <ctime>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::store {

const char* name(Scope s) {
  switch (s) {
    case Scope::all_mail: return "all";
    case Scope::campaigns: return "campaigns";
    case Scope::campaign: return "campaign";
    case Scope::topic: return "topic";
  }
  return "?";
}

std::optional<Scope> parse_scope(std::string_view text) {
  for (auto s : {Scope::all_mail, Scope::campaigns, Scope::campaign, Scope::topic}) {
    if (text == name(s)) return s;
  }
  return std::nullopt;
}

Event feedback_event(const Feedback& f, const std::string& uid) {
  Event e;
  e.uid = uid;
  e.email_id = f.email_id;
  e.launch_list_id = f.launch_list_id;
  e.source = f.source;
  e.time = f.time;
  e.status = f.status;
  e.detail = f.diagnostic;
  switch (f.kind) {
    case FeedbackKind::hard_bounce: e.action = Action::bounced, e.kind = "hard"; break;
    case FeedbackKind::soft_bounce: e.action = Action::bounced, e.kind = "soft"; break;
    case FeedbackKind::blocked: e.action = Action::blocked; break;
    case FeedbackKind::complaint: e.action = Action::complaint; break;
  }
  return e;
}

const char* name(FeedbackKind k) {
  switch (k) {
    case FeedbackKind::hard_bounce: return "hard_bounce";
    case FeedbackKind::soft_bounce: return "soft_bounce";
    case FeedbackKind::blocked: return "blocked";
    case FeedbackKind::complaint: return "complaint";
  }
  return "?";
}

std::optional<FeedbackKind> parse_feedback_kind(std::string_view text) {
  for (auto k : {FeedbackKind::hard_bounce, FeedbackKind::soft_bounce, FeedbackKind::blocked,
                 FeedbackKind::complaint}) {
    if (text == name(k)) return k;
  }
  return std::nullopt;
}

std::string normalise_address(std::string_view address) { return to_lower(address); }

namespace {

bool stops(const Suppression& e, const CopyKind& copy, config::Suppression mode) {
  if (e.scope == Scope::all_mail) return true;
  if (!copy.campaign || mode == config::Suppression::off) return false;
  switch (e.scope) {
    case Scope::campaigns: return true;
    // Part 1: an unsubscribe names its campaign; `global` widens it to all.
    case Scope::campaign: return mode != config::Suppression::campaign || e.scope_value == copy.email_id;
    case Scope::topic: return !copy.topic.empty() && e.scope_value == copy.topic;
    case Scope::all_mail: break;
  }
  return false;
}

/// The first entry keep() accepts that stops the copy; an all_mail entry wins.
template <class Keep>
const Suppression* first_stop(const std::vector<Suppression>& entries, const CopyKind& copy,
                              config::Suppression mode, Keep keep) {
  const Suppression* found = nullptr;
  for (const auto& e : entries) {
    if (!keep(e) || !stops(e, copy, mode)) continue;
    if (e.scope == Scope::all_mail) return &e;
    if (!found) found = &e;
  }
  return found;
}

}  // namespace

const Suppression* applicable(const std::vector<Suppression>& entries, const CopyKind& copy,
                              config::Suppression mode) {
  return first_stop(entries, copy, mode, [](const Suppression&) { return true; });
}

const Suppression* applicable_to(const std::vector<Suppression>& entries, std::string_view address,
                                 const CopyKind& copy, config::Suppression mode, long long recorded_before) {
  return first_stop(entries, copy, mode, [&](const Suppression& e) {
    return e.address == address && e.created < recorded_before;
  });
}

namespace {

/// The log's words: Part 1's "unsubscribed", else what, from where, since when.
std::string verdict_reason(const Suppression& e) {
  if (e.reason == "unsubscribe") return "unsubscribed";
  const auto t = static_cast<std::time_t>(e.created);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{} from {} on {:04}-{:02}-{:02}", e.reason, e.source, tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday);
}

}  // namespace

std::optional<std::vector<SendVerdict>> Store::check_suppression(const SendScope& scope,
                                                                 const std::vector<SendRecipient>& recipients) {
  std::vector<SendVerdict> out(recipients.size());
  if (recipients.empty()) return out;
  // Each address and its hashed forms (an erased address, contact.hpp), all in one call.
  const auto& keys = erasure_keys();
  std::vector<std::string> addresses;
  addresses.reserve(recipients.size() * (1 + keys.size()));
  for (const auto& r : recipients) addresses.push_back(normalise_address(r.address));
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    for (auto& form : keys.forms(addresses[i])) addresses.push_back(std::move(form));
  }
  const auto entries = suppressions_for(addresses, static_cast<long long>(std::time(nullptr)));
  if (!entries) return std::nullopt;
  if (entries->empty()) return out;
  const CopyKind kind{scope.campaign, scope.email_id, scope.topic};
  const std::size_t per_address = keys.size();
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    if (const auto* stop = applicable_to(*entries, addresses[i], kind, scope.mode)) {
      out[i] = {true, verdict_reason(*stop)};
      continue;
    }
    for (std::size_t k = 0; k < per_address; ++k) {
      const auto& form = addresses[recipients.size() + i * per_address + k];
      if (const auto* stop = applicable_to(*entries, form, kind, scope.mode)) {
        out[i] = {true, verdict_reason(*stop) + " (erased address)", true};
        break;
      }
    }
  }
  return out;
}

}  // namespace unsubrelay::store
