// client_codec.hpp: the pure halves of the SMTP client: reading replies and
// writing DATA. No I/O; unit-tested without sockets.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::smtp {

/// A reply from an SMTP server, possibly multi-line (RFC 5321 §4.2.1).
struct ServerReply {
  int code = 0;
  std::vector<std::string> lines;  // text after "250-" / "250 "
  /// "250 2.0.0 Ok ..." on one line: for logs and bounces (lines joined by spaces).
  std::string text() const;
  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
};

/// Collects reply lines. push() returns a complete reply after its last line,
/// nothing while a multi-line reply continues, and flags malformed lines.
class ReplyReader {
 public:
  enum class Status { more, complete, malformed };
  Status push(std::string_view line);
  ServerReply take();

 private:
  ServerReply current_;
  static constexpr std::size_t max_lines = 100;  // a server cannot make us buffer forever
};

/// The DATA payload for the wire: every line ending made CRLF (no bare CR or
/// LF ever leaves the relay), leading dots doubled (RFC 5321 §4.5.2), a final
/// CRLF added when missing, and the terminating ".\r\n".
std::string dot_stuff(std::string_view content);

/// False when dot_stuff(content) is content + ".\r\n" (CRLF lines, none
/// starting with a dot): the content then goes out as it is, uncopied.
bool needs_stuffing(std::string_view content);

/// Whether content has a byte over 127 (BODY=8BITMIME is then declared),
/// eight bytes per step.
bool has_8bit(std::string_view content);

/// The keywords of an EHLO reply ("PIPELINING", "SIZE 10485760", "AUTH PLAIN LOGIN").
struct Extensions {
  bool pipelining = false;
  bool starttls = false;
  bool eightbitmime = false;
  bool auth_plain = false;
  bool auth_login = false;
  std::optional<std::uint64_t> size;  // 0 = no fixed limit
};
Extensions parse_ehlo(const ServerReply& reply);

/// The Amazon SES message id in "250 Ok 0100018c...-000000", or "".
std::string ses_message_id(const ServerReply& reply);

}  // namespace unsubrelay::smtp
