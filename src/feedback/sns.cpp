// sns.cpp: the SNS JSON envelope and the string AWS signs.
#include "unsubrelay/feedback/sns.hpp"

#include <ctime>

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

/// n digits at text[pos], as a number; advances pos. -1 when they are not all digits.
int digits(std::string_view text, std::size_t& pos, std::size_t n) {
  if (pos + n > text.size()) return -1;
  int v = 0;
  for (std::size_t end = pos + n; pos < end; ++pos) {
    if (text[pos] < '0' || text[pos] > '9') return -1;
    v = v * 10 + (text[pos] - '0');
  }
  return v;
}

}  // namespace

std::optional<std::int64_t> parse_sns_timestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  std::size_t pos = 0;
  std::tm tm{};
  constexpr char separators[] = {'-', '-', 'T', ':', ':'};
  int fields[6] = {digits(text, pos, 4)};
  for (int i = 0; i < 5; ++i) {
    fields[i + 1] = pos < text.size() && text[pos++] == separators[i] ? digits(text, pos, 2) : -1;
  }
  if (fields[0] < 1970 || fields[1] < 1 || fields[1] > 12 || fields[2] < 1 || fields[2] > 31 || fields[3] < 0 ||
      fields[3] > 23 || fields[4] < 0 || fields[4] > 59 || fields[5] < 0 || fields[5] > 60)
    return std::nullopt;
  if (pos < text.size() && text[pos] == '.') {
    const auto start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  if (pos + 1 != text.size() || text[pos] != 'Z') return std::nullopt;
  tm.tm_year = fields[0] - 1900;
  tm.tm_mon = fields[1] - 1;
  tm.tm_mday = fields[2];
  tm.tm_hour = fields[3];
  tm.tm_min = fields[4];
  tm.tm_sec = fields[5];
  return static_cast<std::int64_t>(timegm(&tm));
}

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
