// arf.cpp: the message/feedback-report part (RFC 5965 §3), redaction (RFC 6590).
#include "unsubrelay/feedback/arf.hpp"

#include <fmt/format.h>

#include "report_parts.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {

bool is_feedback_part(const mime::Part& p) { return p.type == "message" && p.subtype == "feedback-report"; }

void read_fields(const std::vector<FieldGroup>& groups, FeedbackReport& r, std::size_t max_list) {
  auto set_once = [](std::string& member, std::string_view value) {
    if (member.empty()) member = std::string(value);
  };
  auto add = [max_list](std::vector<std::string>& list, std::string value) {
    if (list.size() < max_list && !value.empty()) list.push_back(std::move(value));
  };
  for (const auto& group : groups) {  // RFC 5965 has one block; a stray blank line must not lose fields
    for (const auto& f : group) {
      const auto& n = f.name;
      if (iequals(n, "Feedback-Type")) set_once(r.feedback_type, to_lower(f.value));
      else if (iequals(n, "User-Agent")) set_once(r.user_agent, f.value);
      else if (iequals(n, "Version")) set_once(r.version, f.value);
      else if (iequals(n, "Original-Mail-From")) set_once(r.original_mail_from, typed_address(f.value));
      else if (iequals(n, "Original-Rcpt-To")) add(r.original_rcpt_to, typed_address(f.value));
      else if (iequals(n, "Arrival-Date") || iequals(n, "Received-Date")) set_once(r.arrival_date, f.value);
      else if (iequals(n, "Source-IP")) set_once(r.source_ip, f.value);
      else if (iequals(n, "Reported-Domain")) add(r.reported_domain, f.value);
      else if (iequals(n, "Reported-URI")) add(r.reported_uri, f.value);
      else if (iequals(n, "Original-Envelope-Id")) set_once(r.original_envelope_id, f.value);
      else if (iequals(n, "Reporting-MTA")) set_once(r.reporting_mta, typed_address(f.value));
      else if (iequals(n, "Incidents")) set_once(r.incidents, f.value);
    }
  }
}

}  // namespace

const char* describe(ArfError e) {
  switch (e) {
    case ArfError::none: return "ok";
    case ArfError::not_a_report: return "not a feedback report";
    case ArfError::no_feedback_type: return "feedback report without Feedback-Type";
    case ArfError::unreadable: return "message header unreadable";
  }
  return "?";
}

ArfParse parse_arf(std::string_view message, const ReportLimits& limits) {
  ArfParse out;
  const auto scanned = detail::scan_report(message, limits, out.notes);
  if (scanned.unreadable) {
    out.error = ArfError::unreadable;
    return out;
  }
  const auto& root = scanned.scan.root;
  const auto found = detail::parts_where(root, is_feedback_part);
  if (found.empty()) return out;
  if (!(root.type == "multipart" && root.subtype == "report")) {
    out.notes.push_back(fmt::format("feedback report inside {}/{}, not multipart/report", root.type, root.subtype));
  } else if (!iequals(detail::report_type(root), "feedback-report")) {
    out.notes.push_back(fmt::format("multipart/report with report-type \"{}\"", printable(detail::report_type(root), 40)));
  }
  const auto* part = found.front();
  const auto body = detail::decoded_body(message, *part, limits, out.notes);
  read_fields(parse_field_groups(body, limits, out.notes), out.report, limits.max_recipients);
  if (const auto* returned = detail::returned_part(root, part)) {
    out.report.returned = {returned->body_begin, returned->end};
    out.report.returned_headers_only = returned->subtype == "rfc822-headers" || returned->subtype == "global-headers";
    out.report.returned_encoding = detail::transfer_encoding(*returned);
  }
  out.error = out.report.feedback_type.empty() ? ArfError::no_feedback_type : ArfError::none;
  return out;
}

bool looks_redacted(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return true;
  const auto local = address.substr(0, at);
  if (to_lower(local).find("redacted") != std::string::npos) return true;
  return local.find_first_not_of("xX*#") == std::string_view::npos;
}

std::string unredacted_recipient(const FeedbackReport& report) {
  for (const auto& a : report.original_rcpt_to) {
    if (!looks_redacted(a)) return a;
  }
  return {};
}

std::string returned_message_text(std::string_view message, const ByteRange& returned, std::string_view encoding,
                                  const ReportLimits& limits) {
  std::vector<std::string> notes;
  return detail::decode_transfer(returned.of(message), encoding, limits.max_status_bytes, notes);
}

}  // namespace unsubrelay::feedback
