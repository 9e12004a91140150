// ses.cpp: SES notification JSON, read without exceptions: a member of the
// wrong type is an error value, never a throw.
#include "unsubrelay/feedback/ses.hpp"

#include <nlohmann/json.hpp>

namespace unsubrelay::feedback {

namespace {

using json = nlohmann::json;

/// obj[name] as a string: "" when absent or null; false when another type.
bool get_string(const json& obj, const char* name, std::string& out) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

/// obj[name] as an object, nullptr when absent or another type.
const json* get_object(const json& obj, const char* name) {
  const auto it = obj.find(name);
  return it != obj.end() && it->is_object() ? &*it : nullptr;
}

/// obj[name] as an array, nullptr when absent or another type.
const json* get_array(const json& obj, const char* name) {
  const auto it = obj.find(name);
  return it != obj.end() && it->is_array() ? &*it : nullptr;
}

SesKind kind_of(std::string_view t) {
  if (t == "Bounce") return SesKind::bounce;
  if (t == "Complaint") return SesKind::complaint;
  if (t == "Delivery") return SesKind::delivery;
  return SesKind::other;
}

bool read_mail(const json& root, SesNotification& n, std::size_t max, std::string& error) {
  const auto* mail = get_object(root, "mail");
  if (mail == nullptr) return true;  // the caller matches by address then
  if (!get_string(*mail, "messageId", n.message_id) || !get_string(*mail, "source", n.source)) {
    error = "mail.messageId or mail.source is not a string";
    return false;
  }
  if (const auto* dest = get_array(*mail, "destination")) {
    for (const auto& d : *dest) {
      if (d.is_string() && n.destination.size() < max) n.destination.push_back(d.get<std::string>());
    }
  }
  return true;
}

bool read_bounce(const json& b, SesNotification& n, std::size_t max, std::string& error) {
  if (!get_string(b, "bounceType", n.bounce_type) || !get_string(b, "bounceSubType", n.bounce_sub_type) ||
      !get_string(b, "feedbackId", n.feedback_id) || !get_string(b, "timestamp", n.timestamp)) {
    error = "a bounce member is not a string";
    return false;
  }
  const auto* list = get_array(b, "bouncedRecipients");
  if (list == nullptr) {
    error = "bounce without bouncedRecipients";
    return false;
  }
  for (const auto& r : *list) {
    if (n.bounced.size() >= max) break;
    if (!r.is_object()) continue;
    SesBouncedRecipient br;
    if (!get_string(r, "emailAddress", br.email_address) || !get_string(r, "action", br.action) ||
        !get_string(r, "status", br.status) || !get_string(r, "diagnosticCode", br.diagnostic_code)) {
      error = "a bouncedRecipients member is not a string";
      return false;
    }
    if (!br.email_address.empty()) n.bounced.push_back(std::move(br));
  }
  return true;
}

bool read_complaint(const json& c, SesNotification& n, std::size_t max, std::string& error) {
  if (!get_string(c, "complaintFeedbackType", n.complaint_feedback_type) ||
      !get_string(c, "complaintSubType", n.complaint_sub_type) || !get_string(c, "feedbackId", n.feedback_id) ||
      !get_string(c, "timestamp", n.timestamp)) {
    error = "a complaint member is not a string";
    return false;
  }
  const auto* list = get_array(c, "complainedRecipients");
  if (list == nullptr) {
    error = "complaint without complainedRecipients";
    return false;
  }
  for (const auto& r : *list) {
    if (n.complained.size() >= max) break;
    std::string address;
    if (r.is_object() && get_string(r, "emailAddress", address) && !address.empty()) n.complained.push_back(address);
  }
  return true;
}

void read_delivery(const json& d, SesNotification& n, std::size_t max) {
  get_string(d, "timestamp", n.timestamp);
  if (const auto* list = get_array(d, "recipients")) {
    for (const auto& r : *list) {
      if (r.is_string() && n.delivered.size() < max) n.delivered.push_back(r.get<std::string>());
    }
  }
}

}  // namespace

SesParse parse_ses(std::string_view message_json, std::size_t max_recipients) {
  SesParse out;
  const json root = json::parse(message_json.begin(), message_json.end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    out.error = "not a JSON object";
    return out;
  }
  SesNotification n;
  if (!get_string(root, "notificationType", n.kind_text) ||
      (n.kind_text.empty() && !get_string(root, "eventType", n.kind_text))) {
    out.error = "notificationType or eventType is not a string";
    return out;
  }
  if (n.kind_text.empty()) {
    out.error = "no notificationType or eventType";
    return out;
  }
  n.kind = kind_of(n.kind_text);
  if (!read_mail(root, n, max_recipients, out.error)) return out;
  bool ok = true;
  if (n.kind == SesKind::bounce) {
    const auto* b = get_object(root, "bounce");
    ok = b != nullptr ? read_bounce(*b, n, max_recipients, out.error) : (out.error = "no bounce object", false);
  } else if (n.kind == SesKind::complaint) {
    const auto* c = get_object(root, "complaint");
    ok = c != nullptr ? read_complaint(*c, n, max_recipients, out.error) : (out.error = "no complaint object", false);
  } else if (n.kind == SesKind::delivery) {
    if (const auto* d = get_object(root, "delivery")) read_delivery(*d, n, max_recipients);
  }
  if (ok) out.notification = std::move(n);
  return out;
}

BounceKind classify_ses_bounce(std::string_view bounce_type) {
  if (bounce_type == "Permanent") return BounceKind::hard;
  if (bounce_type == "Transient") return BounceKind::soft;
  return BounceKind::unknown;
}

}  // namespace unsubrelay::feedback
