// dsn_plain.cpp: bounces without a delivery-status part, read from their text.
//
// Two well-known layouts only, recognised by their fixed sentences, so that an
// out-of-office reply or a person's answer sent to a VERP address is never
// read as a bounce:
// - qmail's QSBMF (cr.yp.to/proto/qsbmf.txt): "<address>:" paragraphs after
//   "I'm afraid I wasn't able to deliver your message", the copy after
//   "--- Below this line is a copy of the message.";
// - Exim's classic notice: addresses indented under "The following
//   address(es) failed:" (or "...has not yet been delivered is:" for a delay),
//   the copy after "------ This is a copy of the message".
#include <fmt/format.h>

#include "report_parts.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {

struct Line {
  std::string_view text;  // without CRLF
  std::size_t begin = 0;  // offset in the scanned text
  std::size_t next = 0;
};

std::vector<Line> split_lines(std::string_view text, std::size_t max_lines) {
  std::vector<Line> lines;
  for (std::size_t pos = 0; pos < text.size() && lines.size() < max_lines;) {
    const auto nl = text.find('\n', pos);
    const std::size_t stop = nl == std::string_view::npos ? text.size() : nl;
    auto t = text.substr(pos, stop - pos);
    if (!t.empty() && t.back() == '\r') t.remove_suffix(1);
    const std::size_t next = nl == std::string_view::npos ? text.size() : nl + 1;
    lines.push_back({t, pos, next});
    pos = next;
  }
  return lines;
}

bool contains_i(std::string_view text, std::string_view what) { return to_lower(text).find(what) != std::string::npos; }

/// The first line index at or after from that contains marker (ignoring case).
std::size_t find_line(const std::vector<Line>& lines, std::size_t from, std::string_view marker) {
  const auto lower_marker = to_lower(marker);
  for (std::size_t i = from; i < lines.size(); ++i) {
    if (to_lower(lines[i].text).find(lower_marker) != std::string::npos) return i;
  }
  return lines.size();
}

/// Where the returned copy starts: after the marker line and any blank lines.
std::size_t copy_start(const std::vector<Line>& lines, std::size_t marker) {
  std::size_t i = marker + 1;
  while (i < lines.size() && trim(lines[i].text).empty()) ++i;
  return i;
}

void qmail_recipients(const std::vector<Line>& lines, std::size_t end, const std::string& action,
                      DeliveryReport& report, std::size_t max_recipients) {
  for (std::size_t i = 0; i < end && report.recipients.size() < max_recipients; ++i) {
    const auto t = lines[i].text;
    if (t.size() < 4 || t.front() != '<' || !t.ends_with(">:")) continue;
    DsnRecipient r;
    r.final_recipient = std::string(t.substr(1, t.size() - 3));
    r.action = action;
    std::string text;
    for (std::size_t j = i + 1; j < end && !trim(lines[j].text).empty() && text.size() < 4096; ++j) {
      if (!text.empty()) text += ' ';
      text += trim(lines[j].text);
    }
    r.status = find_enhanced_status(text);
    r.diagnostic = std::move(text);
    report.recipients.push_back(std::move(r));
  }
}

void exim_recipients(const std::vector<Line>& lines, std::size_t start, std::size_t end, const std::string& action,
                     DeliveryReport& report, std::size_t max_recipients) {
  DsnRecipient* current = nullptr;
  for (std::size_t i = start; i < end && report.recipients.size() <= max_recipients; ++i) {
    const auto t = lines[i].text;
    if (trim(t).empty()) continue;
    const std::size_t indent = t.find_first_not_of(' ');
    if (indent == 0) break;  // the next paragraph of prose
    if (indent <= 2 && trim(t).find('@') != std::string_view::npos) {
      if (report.recipients.size() == max_recipients) break;
      DsnRecipient r;
      r.final_recipient = typed_address(trim(t).substr(0, trim(t).find(' ')));
      r.action = action;
      report.recipients.push_back(std::move(r));
      current = &report.recipients.back();
    } else if (current != nullptr && current->diagnostic.size() < 4096) {
      if (!current->diagnostic.empty()) current->diagnostic += ' ';
      current->diagnostic += trim(t);
      if (current->status.empty()) current->status = find_enhanced_status(t);
    }
  }
}

/// The bounce's text: a non-MIME body, or the first text/plain part.
const mime::Part* text_part(const mime::Part& root) {
  if (!root.is_multipart()) return root.is_text() && root.subtype == "plain" ? &root : nullptr;
  const auto parts = detail::parts_where(root, [](const mime::Part& p) {
    return p.is_text() && p.subtype == "plain" && !p.opaque;
  });
  return parts.empty() ? nullptr : parts.front();
}

}  // namespace

DsnParse parse_plain_bounce(std::string_view message, const detail::ScannedReport& scanned, const ReportLimits& limits,
                            std::vector<std::string> notes) {
  DsnParse out;
  out.notes = std::move(notes);
  const auto* part = text_part(scanned.scan.root);
  if (scanned.unreadable || part == nullptr) return out;
  const auto text = detail::decoded_body(message, *part, limits, out.notes);
  const bool raw = detail::transfer_encoding(*part).empty();  // offsets map back to message
  const auto lines = split_lines(text, limits.max_fields * 16);
  auto& report = out.report;
  report.format = DsnFormat::plain_text;
  std::size_t copy = lines.size();
  if (contains_i(text, "i wasn't able to deliver your message") || contains_i(text, "this is the qmail-send program")) {
    copy = find_line(lines, 0, "--- Below this line is a copy of the message");
    const std::string action = contains_i(text, "this is a permanent error") || !contains_i(text, "temporary")
                                   ? "failed" : "delayed";
    qmail_recipients(lines, copy, action, report, limits.max_recipients);
  } else if (contains_i(text, "could not be delivered to one or more of its") ||
             contains_i(text, "has not yet been delivered to one or more of its")) {
    copy = find_line(lines, 0, "------ This is a copy of the message");
    const bool delayed = contains_i(text, "has not yet been delivered");
    auto list = find_line(lines, 0, delayed ? "The address to which the message has not yet been delivered"
                                            : "The following address(es) failed");
    if (list == lines.size() && delayed) list = find_line(lines, 0, "The addresses to which the message has not yet");
    if (list < copy) exim_recipients(lines, list + 1, copy, delayed ? "delayed" : "failed", report, limits.max_recipients);
  } else {
    return out;  // not a layout we know: the caller counts it as a report with no DSN part
  }
  if (copy < lines.size() && raw) {
    const auto start = copy_start(lines, copy);
    if (start < lines.size()) report.returned = {part->body_begin + lines[start].begin, part->body_begin + text.size()};
  }
  out.error = report.recipients.empty() ? DsnError::no_recipients : DsnError::none;
  return out;
}

}  // namespace unsubrelay::feedback
