// contact_json.cpp: what the contact API and CLI print (manage.hpp).
#include "unsubrelay/store/store.hpp"
#include "unsubrelay/suppression/manage.hpp"

namespace unsubrelay::suppression {

using nlohmann::json;

namespace {

json send_json(const store::ContactSend& s) {
  return {{"email_id", s.email_id},     {"launch_list_id", s.launch_list_id}, {"queue_id", s.queue_id},
          {"upstream_id", s.upstream_id}, {"status", s.status},                {"time", s.time},
          {"last_reply", s.last_reply}, {"after_optout", s.after_optout}};
}

json event_json(const store::ContactEvent& e) {
  return {{"id", e.id},     {"action", e.action}, {"source", e.source},
          {"time", e.time}, {"email_id", e.email_id}, {"launch_list_id", e.launch_list_id},
          {"topic", e.topic}, {"ip", e.ip},         {"user_agent", e.user_agent}};
}

json feedback_json(const store::Feedback& f) {
  return {{"kind", store::name(f.kind)}, {"status", f.status},     {"diagnostic", f.diagnostic},
          {"source", f.source},         {"time", f.time},         {"email_id", f.email_id},
          {"launch_list_id", f.launch_list_id}, {"uid", f.uid}};
}

}  // namespace

json contact_json(const store::ContactRecord& r) {
  json out = {{"address", r.address}, {"contact", nullptr}};
  if (!r.uid.empty()) out["contact"] = {{"uid", r.uid}, {"created", r.created}};
  json sends = json::array(), events = json::array(), entries = json::array(), feedback = json::array();
  for (const auto& s : r.sends) sends.push_back(send_json(s));
  for (const auto& e : r.events) events.push_back(event_json(e));
  for (const auto& e : r.suppressions) entries.push_back(entry_json(e));
  for (const auto& f : r.feedback) feedback.push_back(feedback_json(f));
  out["sends"] = sends;
  out["events"] = events;
  out["suppressions"] = entries;
  out["feedback"] = feedback;
  return out;
}

json erase_json(const std::string& address, const store::EraseOutcome& o) {
  json out = {{"address", address},           {"erased", o.found},        {"uid", o.uid},
              {"suppressions_kept", o.kept},  {"hashed", o.kept ? o.hashed : ""},
              {"events_cleared", o.events},  {"feedback_anonymised", o.feedback},
              {"compacted", o.compacted}};
  if (!o.compact_note.empty()) out["compact_note"] = o.compact_note;
  return out;
}

}  // namespace unsubrelay::suppression
