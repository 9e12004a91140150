// bounce.cpp: RFC 3464 delivery status notifications.
#include "unsubrelay/delivery/bounce.hpp"

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::delivery {

namespace {

constexpr std::size_t max_returned_header = 64 * 1024;

/// The original's header block, CRLF lines, at most max_returned_header bytes,
/// cut at a line end so the part stays well-formed.
std::string original_header(std::string_view content) {
  auto end = content.find("\r\n\r\n");
  auto header = content.substr(0, end == std::string_view::npos ? content.size() : end + 2);
  if (header.size() > max_returned_header) {
    header = header.substr(0, max_returned_header);
    const auto last = header.rfind("\r\n");
    header = header.substr(0, last == std::string_view::npos ? 0 : last + 2);
  }
  return std::string(header);
}

}  // namespace

std::string build_bounce(const BounceInput& in) {
  const auto boundary = fmt::format("{}.{}/{}", in.queue_id, in.now, in.reporting_host);
  std::string m;
  m += fmt::format("From: Mail Delivery System <MAILER-DAEMON@{}>\r\n", in.reporting_host);
  m += fmt::format("To: <{}>\r\n", in.sender);
  m += "Subject: Undelivered Mail Returned to Sender\r\n";
  m += fmt::format("Date: {}\r\n", rfc5322_date(in.now));
  m += fmt::format("Message-ID: <{}.{}.bounce@{}>\r\n", in.queue_id, in.now, in.reporting_host);
  m += "Auto-Submitted: auto-replied\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += fmt::format("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{}\"\r\n", boundary);
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";

  m += fmt::format("--{}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                   boundary);
  m += fmt::format("This is the mail system at host {}.\r\n\r\n", in.reporting_host);
  m += "I'm sorry to have to inform you that your message could not\r\n";
  m += "be delivered to one or more recipients. It's attached below.\r\n\r\n";
  for (const auto& r : in.recipients) {
    m += fmt::format("<{}>: {}\r\n", r.address, printable(r.diagnostic, 500));
  }
  m += "\r\n";

  m += fmt::format("--{}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n",
                   boundary);
  m += fmt::format("Reporting-MTA: dns; {}\r\n", in.reporting_host);
  m += fmt::format("X-Unsubrelay-Queue-ID: {}\r\n", in.queue_id);
  m += fmt::format("Arrival-Date: {}\r\n", rfc5322_date(in.arrival));
  for (const auto& r : in.recipients) {
    m += "\r\n";
    m += fmt::format("Final-Recipient: rfc822; {}\r\n", r.address);
    m += "Action: failed\r\n";
    m += fmt::format("Status: {}\r\n", r.status);
    m += fmt::format("Diagnostic-Code: smtp; {}\r\n", printable(r.diagnostic, 500));
  }
  m += "\r\n";

  m += fmt::format("--{}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n",
                   boundary);
  m += original_header(in.original);
  m += fmt::format("\r\n--{}--\r\n", boundary);
  return m;
}

}  // namespace unsubrelay::delivery
