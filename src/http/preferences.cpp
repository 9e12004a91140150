// preferences.cpp: the preference page's HTML and form, pure (preferences.hpp).
#include "unsubrelay/http/preferences.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/codec.hpp"

namespace unsubrelay::http {

namespace {

using mime::html_escape;

// In the content itself, so an operator's own template (http.page_template)
// gets working switches too. Targets are at least 44 px (WCAG 2.5.5); the
// focus ring shows on the keyboard; colours keep 4.5:1 contrast in both schemes.
constexpr const char* style = R"(<style>
.prefs fieldset { border: 0; margin: 0 0 1.25rem; padding: 0; }
.prefs legend { font-weight: 600; margin-bottom: .5rem; padding: 0; }
.prefs .topic { display: flex; align-items: center; justify-content: space-between; gap: 1rem;
  min-height: 44px; padding: .25rem 0; border-bottom: 1px solid rgba(127,127,127,.3); cursor: pointer; }
.prefs .topic input { appearance: none; -webkit-appearance: none; flex: none; position: relative; margin: 0;
  width: 52px; height: 32px; border-radius: 16px; background: #767676; cursor: pointer; transition: background .15s; }
.prefs .topic input::after { content: ""; position: absolute; top: 4px; left: 4px; width: 24px; height: 24px;
  border-radius: 50%; background: #fff; transition: left .15s; }
.prefs .topic input:checked { background: #1a56db; }
.prefs .topic input:checked::after { left: 24px; }
.prefs .topic input:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.prefs .actions { display: flex; flex-wrap: wrap; gap: .75rem; }
.prefs button.secondary { background: transparent; color: inherit; border: 2px solid currentColor; }
.prefs .notice { padding: .6rem .8rem; border-radius: 8px; background: rgba(26,86,219,.12); }
@media (prefers-reduced-motion: reduce) { .prefs .topic input, .prefs .topic input::after { transition: none; } }
</style>
)";

std::string topic_row(const TopicState& t, bool all_off) {
  const auto id = html_escape(t.id);
  // The whole row is the label: a tap anywhere on it flips the switch, and a
  // screen reader says the topic's name and "on" or "off".
  return fmt::format(
      "<label class=\"topic\" for=\"topic-{0}\"><span>{1}</span>"
      "<input type=\"checkbox\" role=\"switch\" id=\"topic-{0}\" name=\"topic\" value=\"{0}\"{2}></label>\n",
      id, html_escape(t.name), t.subscribed && !all_off ? " checked" : "");
}

}  // namespace

std::string preference_content(const PreferenceView& v) {
  std::string out = style;
  out += "<div class=\"prefs\">\n<h1>Email preferences</h1>\n";
  if (!v.notice.empty()) {
    out += fmt::format("<p class=\"notice\" role=\"status\">{}</p>\n", html_escape(v.notice));
  }
  out += fmt::format("<p>Choose what we send to <strong>{}</strong>.</p>\n", html_escape(v.masked_address));
  if (v.unsubscribed_from_all) {
    out += "<p>You are unsubscribed from all our emails. Turn a topic on and save to receive it again.</p>\n";
  }
  out += fmt::format("<form method=\"post\" action=\"{}\">\n<input type=\"hidden\" name=\"form\" value=\"preferences\">\n",
                     html_escape(v.action));
  out += "<fieldset>\n<legend>Topics</legend>\n";
  for (const auto& t : v.topics) out += topic_row(t, v.unsubscribed_from_all);
  out += "</fieldset>\n<div class=\"actions\">\n"
         "<button type=\"submit\" name=\"action\" value=\"save\">Save preferences</button>\n";
  if (v.unsubscribed_from_all) {
    out += "<button type=\"submit\" name=\"action\" value=\"resubscribe-all\" class=\"secondary\">"
           "Resubscribe to all</button>\n";
  } else {
    out += "<button type=\"submit\" name=\"action\" value=\"unsubscribe-all\" class=\"secondary\">"
           "Unsubscribe from all</button>\n";
  }
  out += "</div>\n</form>\n</div>\n";
  return out;
}

std::optional<PreferenceForm> parse_preference_form(std::string_view body) {
  PreferenceForm form;
  bool is_form = false;
  std::string action;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const auto pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    const auto eq = pair.find('=');
    const auto key = url_decode(pair.substr(0, eq));
    const auto value = eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
    if (key == "form" && value == "preferences") is_form = true;
    if (key == "action") action = value;
    if (key == "topic" && form.wanted.size() < 1000) form.wanted.push_back(value);
  }
  if (!is_form) return std::nullopt;
  form.unsubscribe_all = action == "unsubscribe-all";
  form.resubscribe_all = action == "resubscribe-all";
  return form;
}

std::vector<TopicChange> changes(const std::vector<TopicState>& current, bool all_off, const PreferenceForm& form) {
  using Kind = TopicChange::Kind;
  if (form.unsubscribe_all) return all_off ? std::vector<TopicChange>{} : std::vector<TopicChange>{{Kind::leave_all, {}}};
  if (form.resubscribe_all) return all_off ? std::vector<TopicChange>{{Kind::join_all, {}}} : std::vector<TopicChange>{};
  auto wanted = [&](const std::string& id) {
    return std::find(form.wanted.begin(), form.wanted.end(), id) != form.wanted.end();
  };
  const bool any_wanted = std::any_of(current.begin(), current.end(), [&](const auto& t) { return wanted(t.id); });
  std::vector<TopicChange> out;
  // Everything off while unsubscribed from all is already the case: nothing to record.
  if (all_off && !any_wanted) return out;
  if (all_off) out.push_back({Kind::join_all, {}});
  for (const auto& t : current) {
    if (wanted(t.id) && !t.subscribed) out.push_back({Kind::join_topic, t.id});
    if (!wanted(t.id) && t.subscribed) out.push_back({Kind::leave_topic, t.id});
  }
  return out;
}

}  // namespace unsubrelay::http
