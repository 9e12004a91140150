// address.hpp: RFC 5321 mailbox syntax (§4.1.2), pure and bounded.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace unsubrelay::smtp {

/// A parsed envelope address. The source route of "<@a,@b:user@c>" is dropped,
/// as RFC 5321 §4.1.1.3 and Appendix C tell servers to do.
struct Mailbox {
  std::string local;   // as written, quotes included
  std::string domain;  // a domain name or an address literal "[192.0.2.1]"
  std::string text() const { return local + "@" + domain; }
};

/// Parses the text between the angle brackets of a path. Returns nullopt and
/// sets why on a syntax error. Only ASCII is accepted (no SMTPUTF8).
std::optional<Mailbox> parse_mailbox(std::string_view path, std::string* why = nullptr);

}  // namespace unsubrelay::smtp
