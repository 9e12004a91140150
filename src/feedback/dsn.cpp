// dsn.cpp: the delivery-status part of a report, its recipients, and what
// each bounce means (RFC 3464 §2, RFC 3463 status codes, SPEC Part 2).
#include "unsubrelay/feedback/dsn.hpp"

#include <fmt/format.h>

#include "report_parts.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/// Digits at pos, 1 to max of them; returns how many (0 when not that).
std::size_t digits_at(std::string_view text, std::size_t pos, std::size_t max) {
  std::size_t n = 0;
  while (pos + n < text.size() && is_digit(text[pos + n])) ++n;
  return n >= 1 && n <= max ? n : 0;
}

/// The enhanced code starting at i ("5.1.1"), or 0 when there is none.
std::size_t status_length_at(std::string_view text, std::size_t i) {
  if (text[i] != '2' && text[i] != '4' && text[i] != '5') return 0;
  if (i > 0 && (is_alnum(text[i - 1]) || text[i - 1] == '.')) return 0;
  if (i + 1 >= text.size() || text[i + 1] != '.') return 0;
  const auto subject = digits_at(text, i + 2, 3);
  const auto dot = i + 2 + subject;
  if (subject == 0 || dot >= text.size() || text[dot] != '.') return 0;
  const auto detail = digits_at(text, dot + 1, 3);
  if (detail == 0) return 0;
  const auto end = dot + 1 + detail;
  if (end < text.size() && is_digit(text[end])) return 0;
  if (end + 1 < text.size() && text[end] == '.' && is_digit(text[end + 1])) return 0;  // a dotted quad
  return end - i;
}

bool per_message_field(std::string_view name) {
  for (const char* n : {"Reporting-MTA", "DSN-Gateway", "Received-From-MTA", "Arrival-Date", "Original-Envelope-Id"}) {
    if (iequals(name, n)) return true;
  }
  return false;
}

/// The recipient member a field sets, nullptr for fields we do not keep.
std::string* recipient_member(DsnRecipient& r, std::string_view name) {
  if (iequals(name, "Final-Recipient")) return &r.final_recipient;
  if (iequals(name, "Original-Recipient")) return &r.original_recipient;
  if (iequals(name, "Action")) return &r.action;
  if (iequals(name, "Status")) return &r.status;
  if (iequals(name, "Diagnostic-Code")) return &r.diagnostic;
  if (iequals(name, "Remote-MTA")) return &r.remote_mta;
  if (iequals(name, "Last-Attempt-Date")) return &r.last_attempt_date;
  return nullptr;
}

bool has_any(const DsnRecipient& r) {
  return !r.final_recipient.empty() || !r.original_recipient.empty() || !r.action.empty() || !r.status.empty();
}

void set_recipient_field(DsnRecipient& r, std::string_view name, std::string_view value) {
  if (iequals(name, "Final-Recipient")) {
    r.final_recipient = typed_address(value);
  } else if (iequals(name, "Original-Recipient")) {
    r.original_recipient = typed_address(value);
  } else if (iequals(name, "Action")) {
    // "failed (bad mailbox)": the action word only.
    r.action = to_lower(trim(value.substr(0, value.find_first_of(" \t(;"))));
  } else if (iequals(name, "Status")) {
    r.status = find_enhanced_status(value);
  } else if (iequals(name, "Diagnostic-Code")) {
    const auto semi = value.find(';');
    const auto type = semi == std::string_view::npos ? std::string_view() : trim(value.substr(0, semi));
    if (!type.empty() && type.find(' ') == std::string_view::npos) {
      r.diagnostic_type = to_lower(type);
      r.diagnostic = std::string(trim(value.substr(semi + 1)));
    } else {
      r.diagnostic = std::string(trim(value));
    }
  } else if (iequals(name, "Remote-MTA")) {
    r.remote_mta = typed_address(value);
  } else if (iequals(name, "Last-Attempt-Date")) {
    r.last_attempt_date = std::string(value);
  }
}

/// Reads the groups into the report. Lenient about missing blank lines: a
/// recipient field that the current recipient already has starts the next one
/// (the order within a group varies: Postfix writes Final- before Original-Recipient).
void read_groups(const std::vector<FieldGroup>& groups, DeliveryReport& report, const ReportLimits& limits,
                 std::vector<std::string>& notes) {
  DsnRecipient current;
  bool full = false;
  auto close = [&] {
    if (!has_any(current)) return;
    if (report.recipients.size() >= limits.max_recipients) {
      if (!full) notes.push_back(fmt::format("more than {} recipients; the rest ignored", limits.max_recipients));
      full = true;
    } else {
      report.recipients.push_back(std::move(current));
    }
    current = DsnRecipient();
  };
  for (const auto& group : groups) {
    for (const auto& f : group) {
      if (per_message_field(f.name)) {
        if (iequals(f.name, "Reporting-MTA") && report.reporting_mta.empty()) report.reporting_mta = typed_address(f.value);
        if (iequals(f.name, "Arrival-Date") && report.arrival_date.empty()) report.arrival_date = f.value;
        if (iequals(f.name, "Original-Envelope-Id") && report.original_envelope_id.empty())
          report.original_envelope_id = f.value;
        continue;
      }
      std::string* member = recipient_member(current, f.name);
      if (member == nullptr) continue;
      if (!member->empty()) close();
      set_recipient_field(current, f.name, f.value);
    }
    close();
  }
}

bool is_status_part(const mime::Part& p) {
  return p.type == "message" && (p.subtype == "delivery-status" || p.subtype == "global-delivery-status");
}

}  // namespace

const char* describe(DsnError e) {
  switch (e) {
    case DsnError::none: return "ok";
    case DsnError::not_a_report: return "not a delivery status notification";
    case DsnError::no_recipients: return "delivery status without a recipient";
    case DsnError::unreadable: return "message header unreadable";
  }
  return "?";
}

const char* describe(BounceKind k) {
  switch (k) {
    case BounceKind::hard: return "hard";
    case BounceKind::blocked: return "blocked";
    case BounceKind::soft: return "soft";
    case BounceKind::unknown: return "unknown";
    case BounceKind::delivered: return "delivered";
  }
  return "?";
}

std::string find_enhanced_status(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (const auto n = status_length_at(text, i); n > 0) return std::string(text.substr(i, n));
  }
  return {};
}

BounceKind classify_status(std::string_view status) {
  const auto code = find_enhanced_status(status);
  if (code.empty() || code != trim(status)) return BounceKind::unknown;
  if (code[0] == '4') return BounceKind::soft;
  if (code[0] != '5') return BounceKind::unknown;
  if (code == "5.1.7" || code == "5.1.8") return BounceKind::blocked;  // the sender's address, not the mailbox
  if (code.starts_with("5.1.") || code == "5.2.1") return BounceKind::hard;
  return BounceKind::blocked;
}

BounceKind classify(const DsnRecipient& r) {
  const auto& a = r.action;
  if (a == "delivered" || a == "relayed" || a == "expanded") return BounceKind::delivered;
  if (a == "delayed") return BounceKind::soft;
  if (!a.empty() && a != "failed") return BounceKind::unknown;
  auto status = r.status;
  if (status.empty()) status = find_enhanced_status(r.diagnostic);
  const auto kind = classify_status(status);
  return kind;
}

DsnParse parse_dsn(std::string_view message, const ReportLimits& limits) {
  DsnParse out;
  const auto scanned = detail::scan_report(message, limits, out.notes);
  if (scanned.unreadable) {
    out.error = DsnError::unreadable;
    return out;
  }
  const auto& root = scanned.scan.root;
  if (!(root.type == "multipart" && root.subtype == "report")) {
    // Not the RFC 3464 container: a plain-text bounce, or a status part inside another multipart.
  } else if (!iequals(detail::report_type(root), "delivery-status")) {
    out.notes.push_back(fmt::format("multipart/report with report-type \"{}\"",
                                    printable(detail::report_type(root), 40)));
  }
  const mime::Part* status = nullptr;
  std::vector<FieldGroup> groups;
  for (const auto* p : detail::parts_where(root, is_status_part)) {
    auto body = detail::decoded_body(message, *p, limits, out.notes);
    auto g = parse_field_groups(body, limits, out.notes);
    DeliveryReport probe;
    read_groups(g, probe, limits, out.notes);
    if (!probe.recipients.empty() || status == nullptr) {
      status = p;
      groups = std::move(g);
      if (!probe.recipients.empty()) break;
    }
  }
  if (status == nullptr) return parse_plain_bounce(message, scanned, limits, std::move(out.notes));
  out.report.format = status->subtype == "global-delivery-status" ? DsnFormat::rfc6533 : DsnFormat::rfc3464;
  read_groups(groups, out.report, limits, out.notes);
  if (const auto* returned = detail::returned_part(root, status)) {
    out.report.returned = {returned->body_begin, returned->end};
    out.report.returned_headers_only = returned->subtype == "rfc822-headers" || returned->subtype == "global-headers";
    out.report.returned_encoding = detail::transfer_encoding(*returned);
  }
  out.error = out.report.recipients.empty() ? DsnError::no_recipients : DsnError::none;
  return out;
}

}  // namespace unsubrelay::feedback
