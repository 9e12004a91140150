// locate.hpp: finding our signed tokens in addresses, URLs and returned mail.
//
// Everything here only *finds candidates*: strings shaped like a token
// ([A-Za-z0-9_-], 16 to 512 characters, token.hpp's alphabet and bound).
// None is trusted until token::verify() accepts it, so a forged or garbled
// candidate changes nothing. The caller tries candidates in the order given
// and takes the first that verifies.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/feedback/arf.hpp"
#include "unsubrelay/feedback/report.hpp"

namespace unsubrelay::feedback {

/// The TOKEN of an address "PREFIXTOKEN@domain" (VERP: prefix "b+"; mailto
/// unsubscribes: "u+"). Accepts "<...>", "Name <...>" and "rfc822;" forms.
/// The prefix is compared ignoring ASCII case, the token exactly (base64url is
/// case-sensitive); with a non-empty domain, the address's domain must equal
/// it ignoring case. "" when the address is not of that form.
std::string address_token(std::string_view address, std::string_view prefix, std::string_view domain = {});

/// The token of one URL: its path ends in /u/TOKEN (a "/resubscribe" or other
/// suffix, a query or a fragment may follow), or its query carries e=TOKEN
/// (unsubscribe.page_url's PAGE_URL?e=TOKEN form). "" when neither.
std::string url_token(std::string_view url);

/// Token candidates in free text (a decoded body, a header value): every
/// "/u/TOKEN" and every "?e=", "&e=" or "&amp;e=" followed by a token, in
/// order of appearance, without repeats, at most max_candidates.
std::vector<std::string> tokens_in_text(std::string_view text, std::size_t max_candidates);

enum class TokenSource {
  return_path,         // the returned message's Return-Path: <b+TOKEN@return_path_domain>
  original_mail_from,  // the ARF's Original-Mail-From (the same VERP sender, when Return-Path is gone)
  list_unsubscribe,    // the returned message's List-Unsubscribe (URL /u/TOKEN, then mailto:u+TOKEN@)
  body,                // a /u/TOKEN or ?e=TOKEN URL in a text part of the returned message
};
const char* describe(TokenSource s);

struct TokenCandidate {
  TokenSource source;
  std::string token;
};

struct LocateOptions {
  std::string verp_prefix = "b+";
  std::string return_path_domain;    // "" = any domain (tests); set it to feedback.return_path_domain
  std::string mailto_prefix = "u+";
  std::size_t max_candidates = 16;   // in all, across sources
  ReportLimits limits;               // for scanning the returned message's MIME
};

/// Candidates from a returned message (its bytes, already transfer-decoded:
/// arf.hpp's returned_message_text()), in SPEC Part 2 "Complaints" order:
/// Return-Path, List-Unsubscribe, then URLs in its text parts (text/plain and
/// text/html, quoted-printable and base64 decoded with mime/codec.hpp,
/// multipart descended with mime/scanner.hpp). Headers-only returns give the
/// first two sources only.
std::vector<TokenCandidate> returned_message_tokens(std::string_view returned, const LocateOptions& options);

/// All candidates for a complaint, in order: Return-Path, Original-Mail-From,
/// List-Unsubscribe, body. (Original-Rcpt-To is no token: see
/// arf.hpp's unredacted_recipient(), tried last by the caller.)
std::vector<TokenCandidate> complaint_token_candidates(std::string_view message, const FeedbackReport& report,
                                                       const LocateOptions& options);

}  // namespace unsubrelay::feedback
