// command.hpp: the SMTP command parser, pure code over one command line.
//
// Like Postfix's smtpd_token(), it does no I/O: the session hands it a line
// without its CRLF and gets back the verb and its argument text.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unsubrelay::smtp {

enum class Verb { helo, ehlo, mail, rcpt, data, rset, noop, quit, vrfy, expn, help, starttls, auth, bdat, unknown };

struct Command {
  Verb verb = Verb::unknown;
  std::string_view verb_text;  // as the client wrote it
  std::string_view argument;   // text after the verb and its separating space
};

Command parse_command(std::string_view line);

/// True for lines that show a web client talking to an SMTP port
/// ("GET / HTTP/1.1", "POST ..."): Postfix disconnects at once on these.
bool looks_like_http(std::string_view line);

/// An ESMTP parameter of MAIL or RCPT (RFC 5321 §4.1.2 Mail-parameters).
struct Parameter {
  std::string keyword;  // upper-cased
  std::string value;    // empty when the parameter has no "=value"
};

/// The argument of MAIL FROM: / RCPT TO: split into its path and parameters.
struct PathArgument {
  std::string mailbox;              // "" for the null reverse-path <>
  std::vector<Parameter> parameters;
};

/// Result of parsing "FROM:<path> params" (prefix "FROM:") or "TO:<path> params".
struct PathParse {
  std::optional<PathArgument> value;
  std::string error;  // why it failed, for the 501 reply
};

PathParse parse_path_argument(std::string_view argument, std::string_view prefix, bool allow_null);

}  // namespace unsubrelay::smtp
