// session.hpp: the SMTP server session state machine, with no I/O.
//
// As in OpenSMTPD's smtp_session.c, one enum holds the state, one function
// (enter) changes it, and one table maps each verb to the states it is valid
// in and the step that handles it. The I/O layer (server.cpp) feeds lines in
// and acts on the returned Step: send replies, start TLS, read DATA, close.
// Everything here is unit-tested without sockets or clocks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/feedback/addresses.hpp"
#include "unsubrelay/smtp/reply.hpp"
#include "unsubrelay/tenant/directory.hpp"

namespace unsubrelay::smtp {

enum class SessionState {
  connected,    // greeting sent, no HELO/EHLO yet (also after STARTTLS)
  ready,        // HELO/EHLO done, no transaction
  mail,         // MAIL accepted
  rcpt,         // at least one RCPT accepted
  data,         // 354 sent, DATA bytes flowing
  auth_plain,   // 334 sent, waiting for the PLAIN response
  auth_user,    // AUTH LOGIN: waiting for the user name
  auth_pass,    // AUTH LOGIN: waiting for the password
  closed,
};

/// What the session knows about its client and what it may offer it.
struct SessionPolicy {
  config::SmtpLimits limits;
  std::string hostname;
  std::string client_address;   // printable IP
  bool client_trusted = false;  // inside smtp.allow_networks: may relay without AUTH
  bool tls_available = false;   // a certificate is configured: offer STARTTLS
  bool tls_active = false;      // implicit TLS listener, or after STARTTLS
  bool auth_available = false;
  bool auth_requires_tls = true;
  std::function<bool(const std::string& user, const std::string& password)> verify_password;
  /// unsubscribe.mailto_domain: u+TOKEN@this-domain is ours to take from anyone
  /// (it unsubscribes), never relayed.
  std::string mailto_domain;
  /// feedback: b+TOKEN@return_path_domain and the complaint addresses are
  /// taken from anyone and never relayed (the queue manager hands them to the
  /// feedback processor); verp_valid checks a b+ token's signature.
  feedback::Addresses feedback;
  std::function<bool(std::string_view token)> verp_valid;
  std::uint64_t max_report_bytes = 1048576;  // feedback.max_report_bytes: 552 5.3.4 above it
  /// SPEC Part 3: which tenant a relaying client submits as, and the domains it
  /// may send as; nullptr or not enabled(): no tenants (everything is "default").
  const tenant::Directory* tenants = nullptr;
  /// smtp.tenant_header: a trusted client whose AUTH identity and network name
  /// no tenant names it in this header; "" = not configured.
  std::string tenant_header;
  /// Quotas (tenants[].limits): "" to go on, else the 4xx text; asked at MAIL
  /// FROM (recipients 0) and at each RCPT TO (recipients 1).
  std::function<std::string(const std::string& tenant, std::size_t recipients)> quota_refusal;
};

/// The envelope of the transaction in progress.
struct Envelope {
  std::string helo;
  std::string sender;  // "" = null reverse-path
  std::vector<std::string> recipients;
  std::vector<std::string> unsubscribe_tokens;  // from u+TOKEN@mailto_domain recipients
  bool body_8bit = false;
  std::uint64_t declared_size = 0;  // MAIL FROM SIZE=, 0 when not given
  bool feedback = false;            // a recipient is a feedback address: max_report_bytes applies
  bool relayed = false;             // a recipient is relayed (not a feedback or unsubscribe address)
  bool no_tenant = false;           // a relaying client with no tenant: only feedback and unsubscribe addresses
  std::string tenant;               // the submitting tenant (SPEC Part 3); "" = none chosen (a stranger's report)
  bool tenant_by_header = false;    // smtp.tenant_header names it: known after DATA (server.cpp)
};

enum class Action {
  none,
  close,         // after sending the replies
  start_tls,     // after sending the replies: drop buffered input, handshake, then on_tls_established()
  receive_data,  // after sending 354: decode DATA, then on_data_end()
};

struct Step {
  std::vector<Reply> replies;
  Action action = Action::none;
};

/// How the I/O layer's attempt to store the DATA ended.
struct DataOutcome {
  std::optional<std::string> queue_id;  // set when spooled durably
  std::optional<Reply> refusal;         // set when refused (size, bare LF, spool error); a 2xx here
                                        // accepts without queueing (mail to the unsubscribe address)
};

class Session {
 public:
  explicit Session(SessionPolicy policy);

  Reply greeting() const;
  Step on_line(std::string_view line);
  /// The client sent a line longer than line_limit(); it was skipped to its CRLF.
  Step on_line_too_long();
  Step on_data_end(const DataOutcome& outcome);
  void on_tls_established();

  /// The DATA size limit of the current transaction (smaller for feedback mail).
  std::uint64_t data_limit() const;
  /// The longest line accepted in the current state, CRLF included.
  std::size_t line_limit() const;
  SessionState state() const { return state_; }
  const Envelope& envelope() const { return envelope_; }
  const std::string& auth_user() const { return auth_user_; }
  bool tls_active() const { return policy_.tls_active; }
  std::size_t errors() const { return errors_; }

  /// The Received: header (RFC 5321 §4.4) for a message of this transaction.
  std::string received_header(const std::string& queue_id, long long now) const;

 private:
  Step ehlo(std::string_view arg, bool extended);
  Step mail(std::string_view arg);
  Step rcpt(std::string_view arg);
  Step feedback_rcpt(const std::string& rcpt, feedback::AddressKind kind);
  Step data(std::string_view arg);
  Step starttls(std::string_view arg);
  Step auth(std::string_view arg);
  Step auth_response(std::string_view line);
  Step finish_auth(const std::string& user, const std::string& password);
  /// MAIL FROM by a relaying client: its tenant and the sender's domain; a refusal, or nullopt.
  std::optional<Step> tenant_check(const std::string& sender);

  void enter(SessionState next);
  void reset_transaction();
  /// A reply caused by a client error: counts toward max_errors.
  Step error(Reply r);
  bool auth_offered() const;

  SessionPolicy policy_;
  SessionState state_ = SessionState::connected;
  Envelope envelope_;
  std::string helo_;
  bool extended_ = false;
  std::string auth_user_;
  std::string pending_user_;  // AUTH LOGIN between the two challenges
  std::size_t errors_ = 0;
};

}  // namespace unsubrelay::smtp
