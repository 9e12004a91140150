// reply.hpp: every SMTP reply the relay sends is built here.
//
// A reply pairs the basic code with its enhanced status code (RFC 3463, as
// OpenSMTPD's esc_code does), so no call site can forget one or get the class
// wrong: the first digit of both must agree.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::smtp {

struct Reply {
  int code = 0;
  std::string enhanced;             // "2.0.0"; empty for 220/221-style greetings that carry none
  std::vector<std::string> lines;   // text lines, without code or CRLF

  /// Wire form: "250-first\r\n250 last\r\n", enhanced code on every line.
  std::string wire() const;
  bool positive() const { return code >= 200 && code < 400; }
};

/// One-line reply with an enhanced status code.
Reply reply(int code, std::string_view enhanced, std::string_view text);

/// Reply without an enhanced status code (220 greeting, 334 challenges, 354).
Reply plain_reply(int code, std::string_view text);

}  // namespace unsubrelay::smtp
