// command.cpp: SMTP command line parsing.
#include "unsubrelay/smtp/command.hpp"

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/smtp/address.hpp"

namespace unsubrelay::smtp {

Command parse_command(std::string_view line) {
  static constexpr std::pair<std::string_view, Verb> verbs[] = {
      {"HELO", Verb::helo}, {"EHLO", Verb::ehlo}, {"MAIL", Verb::mail}, {"RCPT", Verb::rcpt},
      {"DATA", Verb::data}, {"RSET", Verb::rset}, {"NOOP", Verb::noop}, {"QUIT", Verb::quit},
      {"VRFY", Verb::vrfy}, {"EXPN", Verb::expn}, {"HELP", Verb::help}, {"STARTTLS", Verb::starttls},
      {"AUTH", Verb::auth}, {"BDAT", Verb::bdat},
  };
  Command cmd;
  const auto space = line.find(' ');
  cmd.verb_text = line.substr(0, space);
  cmd.argument = space == std::string_view::npos ? std::string_view() : trim(line.substr(space + 1));
  for (const auto& [name, verb] : verbs) {
    if (iequals(cmd.verb_text, name)) {
      cmd.verb = verb;
      break;
    }
  }
  return cmd;
}

bool looks_like_http(std::string_view line) {
  for (std::string_view m : {"GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS ", "USER "}) {
    if (line.starts_with(m)) return true;
  }
  return false;
}

PathParse parse_path_argument(std::string_view argument, std::string_view prefix, bool allow_null) {
  PathParse r;
  if (!istarts_with(argument, prefix)) {
    r.error = "Syntax: expected " + std::string(prefix) + "<address>";
    return r;
  }
  auto rest = trim(argument.substr(prefix.size()));  // Postfix-style leniency: "FROM: <a@b>"
  std::string_view path;
  if (!rest.empty() && rest.front() == '<') {
    // The closing '>' is the first one not inside a quoted local part.
    bool quoted = false;
    std::size_t close = std::string_view::npos;
    for (std::size_t i = 1; i < rest.size(); ++i) {
      if (quoted && rest[i] == '\\') {
        ++i;
      } else if (rest[i] == '"') {
        quoted = !quoted;
      } else if (!quoted && rest[i] == '>') {
        close = i;
        break;
      }
    }
    if (close == std::string_view::npos) {
      r.error = "Syntax: missing '>' after address";
      return r;
    }
    path = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
  } else {
    // Legacy senders that omit the brackets: the address runs to the first space.
    const auto sp = rest.find(' ');
    path = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp);
  }
  if (!rest.empty() && rest.front() != ' ') {
    r.error = "Syntax: text after the address";
    return r;
  }

  PathArgument value;
  if (path.empty()) {
    if (!allow_null) {
      r.error = "Syntax: empty address";
      return r;
    }
  } else {
    std::string why;
    const auto mailbox = parse_mailbox(path, &why);
    if (!mailbox) {
      r.error = "Bad address syntax: " + why;
      return r;
    }
    value.mailbox = mailbox->text();
  }

  rest = trim(rest);
  while (!rest.empty()) {
    const auto sp = rest.find(' ');
    const auto word = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : trim(rest.substr(sp));
    const auto eq = word.find('=');
    Parameter p{to_upper(word.substr(0, eq)), eq == std::string_view::npos ? "" : std::string(word.substr(eq + 1))};
    if (p.keyword.empty()) {
      r.error = "Syntax: empty parameter";
      return r;
    }
    value.parameters.push_back(std::move(p));
  }
  r.value = std::move(value);
  return r;
}

}  // namespace unsubrelay::smtp
