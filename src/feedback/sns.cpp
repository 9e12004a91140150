// sns.cpp: the SNS JSON envelope and the string AWS signs.
#include "unsubrelay/feedback/sns.hpp"

#include <nlohmann/json.hpp>

namespace unsubrelay::feedback {

namespace {

using json = nlohmann::json;

/// A string member: true when present and a string (copied to out); a null
/// or absent member leaves out empty; any other type is an error.
bool string_member(const json& j, const char* name, std::string& out, bool& present, std::string& error) {
  present = false;
  const auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) {
    error = std::string(name) + " is not a string";
    return false;
  }
  out = it->get<std::string>();
  present = true;
  return true;
}

SnsType type_of(std::string_view t) {
  if (t == "Notification") return SnsType::notification;
  if (t == "SubscriptionConfirmation") return SnsType::subscription_confirmation;
  if (t == "UnsubscribeConfirmation") return SnsType::unsubscribe_confirmation;
  return SnsType::other;
}

void append(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.push_back('\n');
  out.append(value);
  out.push_back('\n');
}

}  // namespace

SnsParse parse_sns(std::string_view body, const SnsLimits& limits) {
  SnsParse out;
  if (body.size() > limits.max_body_bytes) {
    out.error = "body over " + std::to_string(limits.max_body_bytes) + " bytes";
    return out;
  }
  // No exceptions: a parse error is a discarded value.
  const json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    out.error = "not a JSON object";
    return out;
  }
  SnsMessage m;
  struct Member {
    const char* name;
    std::string* value;
    bool required;
    bool present = false;
  };
  std::vector<Member> members{{"Type", &m.type_text, true},
                              {"MessageId", &m.message_id, true},
                              {"TopicArn", &m.topic_arn, true},
                              {"Timestamp", &m.timestamp, true},
                              {"SignatureVersion", &m.signature_version, true},
                              {"Signature", &m.signature, true},
                              {"SigningCertURL", &m.signing_cert_url, true},
                              {"Message", &m.message, true},
                              {"Subject", &m.subject, false},
                              {"Token", &m.token, false},
                              {"SubscribeURL", &m.subscribe_url, false},
                              {"UnsubscribeURL", &m.unsubscribe_url, false}};
  for (auto& member : members) {
    if (!string_member(j, member.name, *member.value, member.present, out.error)) return out;
    if (member.required && !member.present) {
      out.error = std::string("missing ") + member.name;
      return out;
    }
  }
  m.has_subject = members[8].present;
  m.type = type_of(m.type_text);
  const bool confirmation =
      m.type == SnsType::subscription_confirmation || m.type == SnsType::unsubscribe_confirmation;
  if (confirmation && !members[9].present) {
    out.error = "missing Token";
    return out;
  }
  if (confirmation && !members[10].present) {
    out.error = "missing SubscribeURL";
    return out;
  }
  out.message = std::move(m);
  return out;
}

std::optional<std::string> string_to_sign(const SnsMessage& m) {
  std::string s;
  switch (m.type) {
    case SnsType::notification:
      append(s, "Message", m.message);
      append(s, "MessageId", m.message_id);
      if (m.has_subject) append(s, "Subject", m.subject);
      append(s, "Timestamp", m.timestamp);
      append(s, "TopicArn", m.topic_arn);
      append(s, "Type", m.type_text);
      return s;
    case SnsType::subscription_confirmation:
    case SnsType::unsubscribe_confirmation:
      append(s, "Message", m.message);
      append(s, "MessageId", m.message_id);
      append(s, "SubscribeURL", m.subscribe_url);
      append(s, "Timestamp", m.timestamp);
      append(s, "Token", m.token);
      append(s, "TopicArn", m.topic_arn);
      append(s, "Type", m.type_text);
      return s;
    case SnsType::other:
      break;
  }
  return std::nullopt;
}

}  // namespace unsubrelay::feedback
