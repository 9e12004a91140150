// preference_route.cpp: GET/POST /u/TOKEN as the preference page when
// unsubscribe.topics is configured (SPEC Part 2, "Topics and the preference
// page"). The page itself is pure (preferences.cpp); here the state comes from
// the suppression list and each change is recorded as an event, which moves
// the list; all the changes of one posted form are one transaction (saved
// together, or none of them). GET never changes anything.
#include <ctime>

#include "unsubrelay/http/preferences.hpp"
#include "unsubrelay/http/service.hpp"

namespace unsubrelay::http {

namespace {

struct CurrentState {
  std::vector<TopicState> topics;
  bool all_off = false;
};

/// all_off: an entry that stops every campaign (an unsubscribe without a
/// topic, a complaint, a bounce, a manual or imported entry); a topic is off
/// when its own entry is active.
std::optional<CurrentState> current_state(store::Store& store, const config::Unsubscribe& u,
                                          const std::string& address, const std::string& email_id) {
  const auto entries = store.suppressions_for({address}, static_cast<long long>(std::time(nullptr)));
  if (!entries) return std::nullopt;
  CurrentState state;
  for (const auto& e : *entries) {
    if (e.scope == store::Scope::all_mail || e.scope == store::Scope::campaigns ||
        (e.scope == store::Scope::campaign &&
         (u.suppression != config::Suppression::campaign || e.scope_value == email_id))) {
      state.all_off = true;
    }
  }
  for (const auto& t : u.topics) {
    bool off = false;
    for (const auto& e : *entries) off = off || (e.scope == store::Scope::topic && e.scope_value == t.id);
    state.topics.push_back({t.id, t.name, !off});
  }
  return state;
}

store::Event event_for(const std::string& uid, const token::Claims& c, const Request& r, const TopicChange& change) {
  using Kind = TopicChange::Kind;
  const bool leave = change.kind == Kind::leave_topic || change.kind == Kind::leave_all;
  store::Event e{uid,
                 c.email_id,
                 c.launch_list_id,
                 leave ? store::Action::unsubscribe : store::Action::resubscribe,
                 "page",
                 static_cast<long long>(std::time(nullptr)),
                 r.client_ip,
                 r.user_agent};
  e.topic = change.topic;  // "" for the all-campaigns changes; join_all lifts every campaign entry
  return e;
}

}  // namespace

bool Service::preference_request(const Request& r) const {
  if (config_.unsubscribe.topics.empty() || is_script_page(template_)) return false;
  if (r.method == "GET" || r.method == "HEAD") return true;
  return r.method == "POST" && parse_preference_form(r.body).has_value();
}

Response Service::preference_page(const Request& r, const token::Claims& claims, const std::string& token) {
  const auto uid = token::uid_text(claims.uid);
  const auto address = store_.address_of(uid);
  if (!address) {
    return page(404, "Unknown address", "<h1>We hold no address for this link</h1><p>It may have been erased.</p>");
  }
  auto state = current_state(store_, config_.unsubscribe, *address, claims.email_id);
  if (!state) return page(503, "Try again", "<h1>Please try again in a moment</h1>");
  std::string notice;
  if (r.method == "POST") {
    const auto form = parse_preference_form(r.body);
    const auto wanted = changes(state->topics, state->all_off, *form);
    std::vector<store::Event> events;
    for (const auto& change : wanted) events.push_back(event_for(uid, claims, r, change));
    if (!events.empty() && !store_.record_events(events)) {
      return page(503, "Try again", "<h1>Please try again in a moment</h1><p>Nothing was saved.</p>");
    }
    for (const auto& change : wanted) {
      if (change.kind == TopicChange::Kind::leave_all || change.kind == TopicChange::Kind::leave_topic) {
        ++metrics_.unsubscribes["page"];
      }
    }
    state = current_state(store_, config_.unsubscribe, *address, claims.email_id);
    if (!state) return page(503, "Try again", "<h1>Please try again in a moment</h1>");
    notice = "Your preferences are saved.";
  }
  const PreferenceView view{mask_address(*address), "/u/" + token, state->topics, state->all_off, notice};
  return page(200, "Email preferences", preference_content(view));
}

}  // namespace unsubrelay::http
