// session.cpp: SMTP server session: command table, transitions, replies.
#include "unsubrelay/smtp/session.hpp"
#include "unsubrelay/smtp/tenant_intake.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/smtp/auth.hpp"
#include "unsubrelay/smtp/command.hpp"

namespace unsubrelay::smtp {

namespace {

using S = SessionState;

bool in(SessionState s, std::initializer_list<SessionState> set) {
  for (auto x : set) {
    if (x == s) return true;
  }
  return false;
}

Step one(Reply r, Action a = Action::none) { return Step{{std::move(r)}, a}; }

}  // namespace

Session::Session(SessionPolicy policy) : policy_(std::move(policy)) {}

void Session::enter(SessionState next) { state_ = next; }

void Session::reset_transaction() {
  envelope_.sender.clear();
  envelope_.recipients.clear();
  envelope_.unsubscribe_tokens.clear();
  envelope_.body_8bit = false;
  envelope_.declared_size = 0;
  envelope_.feedback = false;
  if (in(state_, {S::mail, S::rcpt, S::data})) enter(S::ready);
}

Step Session::error(Reply r) {
  if (++errors_ >= policy_.limits.max_errors) {
    enter(S::closed);
    return Step{{std::move(r), reply(421, "4.7.0", policy_.hostname + " Error: too many errors")}, Action::close};
  }
  return one(std::move(r));
}

bool Session::auth_offered() const {
  return policy_.auth_available && (policy_.tls_active || !policy_.auth_requires_tls);
}

Reply Session::greeting() const { return plain_reply(220, policy_.hostname + " ESMTP unsubrelay"); }

std::uint64_t Session::data_limit() const {
  const auto limit = policy_.limits.max_message_bytes;
  return envelope_.feedback ? std::min<std::uint64_t>(limit, policy_.max_report_bytes) : limit;
}

std::size_t Session::line_limit() const {
  if (in(state_, {S::auth_plain, S::auth_user, S::auth_pass})) return policy_.limits.max_auth_line;
  return policy_.limits.max_command_line;
}

Step Session::on_line_too_long() {
  return error(reply(500, "5.5.2", "Error: line too long"));
}

Step Session::on_line(std::string_view line) {
  if (state_ == S::closed) return {};
  if (in(state_, {S::auth_plain, S::auth_user, S::auth_pass})) return auth_response(line);
  if (line.size() + 2 > line_limit() && !istarts_with(line, "AUTH ")) return on_line_too_long();

  if (looks_like_http(line)) {
    enter(S::closed);
    return one(reply(521, "5.5.1", "Error: this is an SMTP server, not a web server"), Action::close);
  }
  if (line.find('\0') != std::string_view::npos) return error(reply(500, "5.5.2", "Error: NUL in command"));

  const auto cmd = parse_command(line);
  const auto arg = cmd.argument;
  // The command table: which states each verb is valid in. RFC 2920 §3.1:
  // EHLO, DATA, STARTTLS, AUTH and QUIT end a pipelined group; the I/O layer
  // flushes replies whenever its input buffer runs dry, which covers them.
  switch (cmd.verb) {
    case Verb::ehlo:
    case Verb::helo:
      return ehlo(arg, cmd.verb == Verb::ehlo);
    case Verb::mail:
      if (state_ == S::connected) return error(reply(503, "5.5.1", "Error: send HELO/EHLO first"));
      if (in(state_, {S::mail, S::rcpt})) return error(reply(503, "5.5.1", "Error: nested MAIL command"));
      return mail(arg);
    case Verb::rcpt:
      if (!in(state_, {S::mail, S::rcpt})) return error(reply(503, "5.5.1", "Error: need MAIL command"));
      return rcpt(arg);
    case Verb::data:
      if (state_ != S::rcpt) {
        return error(reply(503, "5.5.1", state_ == S::mail ? "Error: need RCPT command" : "Error: need MAIL command"));
      }
      return data(arg);
    case Verb::rset:
      if (!arg.empty()) return error(reply(501, "5.5.4", "Syntax: RSET"));
      reset_transaction();
      return one(reply(250, "2.0.0", "Ok"));
    case Verb::noop:
      return one(reply(250, "2.0.0", "Ok"));
    case Verb::quit:
      enter(S::closed);
      return one(reply(221, "2.0.0", "Bye"), Action::close);
    case Verb::vrfy:
      if (arg.empty()) return error(reply(501, "5.5.4", "Syntax: VRFY address"));
      return one(reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"));
    case Verb::expn:
      return error(reply(502, "5.5.1", "Error: EXPN not supported"));
    case Verb::help:
      return one(reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH"));
    case Verb::starttls:
      return starttls(arg);
    case Verb::auth:
      return auth(arg);
    case Verb::bdat:
      return error(reply(502, "5.5.1", "Error: CHUNKING not supported"));
    case Verb::unknown:
      break;
  }
  return error(reply(502, "5.5.2", "Error: command not recognized"));
}

Step Session::ehlo(std::string_view arg, bool extended) {
  if (arg.empty() || arg.find(' ') != std::string_view::npos) {
    return error(reply(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname"));
  }
  reset_transaction();  // RFC 5321 §4.1.4: EHLO mid-transaction acts as RSET
  helo_ = std::string(arg);
  envelope_.helo = helo_;
  extended_ = extended;
  enter(S::ready);
  if (!extended) return one(plain_reply(250, policy_.hostname));

  Reply r{250, {}, {policy_.hostname}};
  r.lines.push_back("PIPELINING");
  r.lines.push_back(fmt::format("SIZE {}", policy_.limits.max_message_bytes));
  r.lines.push_back("8BITMIME");
  r.lines.push_back("ENHANCEDSTATUSCODES");
  if (policy_.tls_available && !policy_.tls_active) r.lines.push_back("STARTTLS");
  if (auth_offered()) r.lines.push_back("AUTH PLAIN LOGIN");
  return one(std::move(r));
}

Step Session::mail(std::string_view arg) {
  const auto parsed = parse_path_argument(arg, "FROM:", true);
  if (!parsed.value) return error(reply(501, "5.5.4", parsed.error));
  bool body_8bit = false;
  std::uint64_t declared_size = 0;
  for (const auto& p : parsed.value->parameters) {
    if (p.keyword == "SIZE") {
      std::uint64_t size = 0;
      const auto [end, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), size);
      if (p.value.empty() || ec != std::errc{} || end != p.value.data() + p.value.size()) {
        return error(reply(501, "5.5.4", "Bad SIZE parameter"));
      }
      if (size > policy_.limits.max_message_bytes) {
        return error(reply(552, "5.3.4", "Message size exceeds fixed limit"));
      }
      declared_size = size;
    } else if (p.keyword == "BODY") {
      if (iequals(p.value, "8BITMIME")) {
        body_8bit = true;
      } else if (!iequals(p.value, "7BIT")) {
        return error(reply(501, "5.5.4", "Bad BODY parameter"));
      }
    } else if (p.keyword == "AUTH") {
      // RFC 4954 §5: accepted and ignored; we do not trust other servers' claims.
    } else {
      return error(reply(555, "5.5.4", "Unsupported option: " + printable(p.keyword, 40)));
    }
  }
  if (auto refused = tenant_check(parsed.value->mailbox)) return std::move(*refused);
  envelope_.sender = parsed.value->mailbox;
  envelope_.body_8bit = body_8bit;
  envelope_.declared_size = declared_size;
  envelope_.feedback = false;
  envelope_.relayed = false;
  envelope_.recipients.clear();
  envelope_.unsubscribe_tokens.clear();
  enter(S::mail);
  return one(reply(250, "2.1.0", "Ok"));
}

std::optional<Step> Session::tenant_check(const std::string& sender) {
  envelope_.tenant.clear();
  envelope_.no_tenant = false;
  envelope_.tenant_by_header = false;
  const auto* tenants = policy_.tenants;
  // A stranger (no relay rights) may only reach feedback and unsubscribe
  // addresses: that is no submission, so no tenant (its RCPTs are checked as before).
  if (!tenants || !tenants->enabled() || (!policy_.client_trusted && auth_user_.empty())) return std::nullopt;
  boost::system::error_code ec;
  const auto client = boost::asio::ip::make_address(policy_.client_address, ec);
  auto tenant = tenants->select(auth_user_, ec ? boost::asio::ip::address() : config::unmap(client), false);
  if (!tenant && policy_.client_trusted && !policy_.tenant_header.empty()) {
    // The header names the tenant; its domains and quotas are checked after DATA, before the 250.
    envelope_.tenant_by_header = true;
    return std::nullopt;
  }
  if (!tenant) tenant = tenants->default_tenant();
  if (!tenant) {
    // The relay's own feedback and unsubscribe addresses take mail from anyone,
    // a trusted local MX handing bounces on included: then the refusal waits for
    // a recipient that would be relayed (rcpt()). Nothing is relayed without a tenant.
    if (policy_.feedback.empty() && policy_.mailto_domain.empty()) {
      return error(reply(550, "5.7.1", "Error: no tenant for this client"));
    }
    envelope_.no_tenant = true;
    return std::nullopt;
  }
  if (auto refused = sender_refusal(sender, *tenant, *tenants)) return error(std::move(*refused));
  if (policy_.quota_refusal) {
    if (auto why = policy_.quota_refusal(*tenant, 0); !why.empty()) return one(reply(451, "4.7.1", why));
  }
  envelope_.tenant = *tenant;
  return std::nullopt;
}

Step Session::rcpt(std::string_view arg) {
  const auto parsed = parse_path_argument(arg, "TO:", false);
  if (!parsed.value) return error(reply(501, "5.5.4", parsed.error));
  if (!parsed.value->parameters.empty()) {
    return error(reply(555, "5.5.4", "Unsupported option: " + printable(parsed.value->parameters[0].keyword, 40)));
  }
  const auto& rcpt = parsed.value->mailbox;
  if (!policy_.mailto_domain.empty()) {
    const auto at = rcpt.rfind('@');
    if (at != std::string::npos && rcpt.starts_with("u+") && at > 2 &&
        iequals(std::string_view(rcpt).substr(at + 1), policy_.mailto_domain)) {
      if (envelope_.unsubscribe_tokens.size() + envelope_.recipients.size() >= policy_.limits.max_recipients) {
        return one(reply(452, "4.5.3", "Error: too many recipients"));
      }
      envelope_.unsubscribe_tokens.emplace_back(std::string_view(rcpt).substr(2, at - 2));
      enter(S::rcpt);
      return one(reply(250, "2.1.5", "Ok"));
    }
  }
  if (const auto kind = policy_.feedback.classify(rcpt); kind != feedback::AddressKind::none) {
    return feedback_rcpt(rcpt, kind);
  }
  // Never an open relay: only trusted networks and authenticated clients relay.
  if (!policy_.client_trusted && auth_user_.empty()) {
    return error(reply(554, "5.7.1", fmt::format("<{}>: Relay access denied", printable(rcpt, 256))));
  }
  if (envelope_.no_tenant) return error(reply(550, "5.7.1", "Error: no tenant for this client"));
  if (envelope_.recipients.size() >= policy_.limits.max_recipients) {
    // RFC 5321 §4.5.3.1.10: 452, not a hard error; the client sends the rest later.
    return one(reply(452, "4.5.3", "Error: too many recipients"));
  }
  if (policy_.quota_refusal && !envelope_.tenant.empty()) {
    const auto count = envelope_.recipients.size() + 1;  // this transaction's, with this one
    if (auto why = policy_.quota_refusal(envelope_.tenant, count); !why.empty()) return one(reply(451, "4.7.1", why));
  }
  envelope_.recipients.push_back(rcpt);
  envelope_.relayed = true;
  enter(S::rcpt);
  return one(reply(250, "2.1.5", "Ok"));
}

/// Bounces and complaints come from anyone (the Internet's MTAs): a feedback
/// address is accepted without relay rights, as a final destination. Mixed
/// with ordinary recipients (from a client allowed to relay), each recipient
/// is routed on its own and the whole message is held to max_report_bytes.
Step Session::feedback_rcpt(const std::string& rcpt, feedback::AddressKind kind) {
  if (kind == feedback::AddressKind::verp &&
      !(policy_.verp_valid && policy_.verp_valid(policy_.feedback.verp_token(rcpt)))) {
    return error(reply(550, "5.1.1", fmt::format("<{}>: Recipient address rejected: not a valid bounce address",
                                                 printable(rcpt, 256))));
  }
  if (envelope_.declared_size > policy_.max_report_bytes) {
    return error(reply(552, "5.3.4", "Message size exceeds fixed limit for feedback mail"));
  }
  if (envelope_.unsubscribe_tokens.size() + envelope_.recipients.size() >= policy_.limits.max_recipients) {
    return one(reply(452, "4.5.3", "Error: too many recipients"));
  }
  envelope_.recipients.push_back(rcpt);
  envelope_.feedback = true;
  enter(S::rcpt);
  return one(reply(250, "2.1.5", "Ok"));
}

Step Session::data(std::string_view arg) {
  if (!arg.empty()) return error(reply(501, "5.5.4", "Syntax: DATA"));
  enter(S::data);
  return one(plain_reply(354, "End data with <CR><LF>.<CR><LF>"), Action::receive_data);
}

Step Session::on_data_end(const DataOutcome& outcome) {
  Step step;
  if (outcome.queue_id) {
    step = one(reply(250, "2.0.0", "Ok: queued as " + *outcome.queue_id));
  } else if (outcome.refusal && outcome.refusal->positive()) {
    step = one(*outcome.refusal);  // accepted, but nothing queued (unsubscribe by mail)
  } else {
    step = error(outcome.refusal.value_or(reply(451, "4.3.0", "Error: queue file write error")));
  }
  if (state_ == S::data) {
    enter(S::ready);
    reset_transaction();
  }
  return step;
}

Step Session::starttls(std::string_view arg) {
  if (!arg.empty()) return error(reply(501, "5.5.4", "Syntax: STARTTLS"));
  if (policy_.tls_active) return error(reply(503, "5.5.1", "Error: TLS already active"));
  if (!policy_.tls_available) return error(reply(502, "5.5.1", "Error: STARTTLS not available"));
  return one(plain_reply(220, "2.0.0 Ready to start TLS"), Action::start_tls);
}

void Session::on_tls_established() {
  // RFC 3207 §4.2: discard all knowledge obtained from the client before TLS.
  policy_.tls_active = true;
  envelope_ = Envelope{};
  helo_.clear();
  extended_ = false;
  auth_user_.clear();
  enter(S::connected);
}

Step Session::auth(std::string_view arg) {
  if (!policy_.auth_available) return error(reply(503, "5.5.1", "Error: authentication not enabled"));
  if (state_ == S::connected) return error(reply(503, "5.5.1", "Error: send EHLO first"));
  if (!auth_offered()) return error(reply(538, "5.7.11", "Encryption required for requested authentication mechanism"));
  if (!auth_user_.empty()) return error(reply(503, "5.5.1", "Error: already authenticated"));
  if (in(state_, {S::mail, S::rcpt})) return error(reply(503, "5.5.1", "Error: MAIL transaction in progress"));

  const auto sp = arg.find(' ');
  const auto mechanism = arg.substr(0, sp);
  const auto initial = sp == std::string_view::npos ? std::string_view() : trim(arg.substr(sp + 1));
  if (iequals(mechanism, "PLAIN")) {
    if (initial.empty()) {
      enter(S::auth_plain);
      return one(plain_reply(334, ""));
    }
    const std::string_view response = initial == "=" ? std::string_view() : initial;
    enter(S::auth_plain);
    return auth_response(response);
  }
  if (iequals(mechanism, "LOGIN")) {
    if (initial.empty()) {
      enter(S::auth_user);
      return one(plain_reply(334, "VXNlcm5hbWU6"));  // "Username:"
    }
    enter(S::auth_user);
    return auth_response(initial);
  }
  return error(reply(504, "5.5.4", "Error: unsupported authentication mechanism"));
}

Step Session::auth_response(std::string_view line) {
  const auto current = state_;
  if (line == "*") {  // RFC 4954 §4: the client cancels
    enter(S::ready);
    return error(reply(501, "5.7.0", "Authentication aborted"));
  }
  const auto decoded = base64_decode(line);
  if (!decoded) {
    enter(S::ready);
    return error(reply(501, "5.5.2", "Error: cannot decode response"));
  }
  if (current == S::auth_plain) {
    const auto creds = decode_sasl_plain(line);
    if (!creds) {
      enter(S::ready);
      return error(reply(501, "5.5.2", "Error: malformed PLAIN response"));
    }
    if (!creds->authzid.empty() && creds->authzid != creds->user) {
      enter(S::ready);
      return error(reply(535, "5.7.8", "Error: authentication failed"));
    }
    return finish_auth(creds->user, creds->password);
  }
  if (current == S::auth_user) {
    pending_user_ = *decoded;
    enter(S::auth_pass);
    return one(plain_reply(334, "UGFzc3dvcmQ6"));  // "Password:"
  }
  return finish_auth(std::exchange(pending_user_, {}), *decoded);
}

Step Session::finish_auth(const std::string& user, const std::string& password) {
  enter(S::ready);
  if (policy_.verify_password && policy_.verify_password(user, password)) {
    auth_user_ = user;
    return one(reply(235, "2.7.0", "Authentication successful"));
  }
  return error(reply(535, "5.7.8", "Error: authentication failed"));
}

std::string Session::received_header(const std::string& queue_id, long long now) const {
  // RFC 3848 protocol names: ESMTP, plus S for TLS and A for AUTH.
  std::string proto = extended_ ? "ESMTP" : "SMTP";
  if (extended_ && policy_.tls_active) proto += "S";
  if (extended_ && !auth_user_.empty()) proto += "A";
  std::string out = fmt::format("Received: from {} ([{}])\r\n\tby {} (unsubrelay) with {} id {}", printable(helo_, 80),
                                policy_.client_address, policy_.hostname, proto, queue_id);
  if (envelope_.recipients.size() == 1) out += fmt::format("\r\n\tfor <{}>", printable(envelope_.recipients[0], 256));
  out += fmt::format("; {}\r\n", rfc5322_date(now));
  return out;
}

}  // namespace unsubrelay::smtp
