// locate.cpp: token candidates in addresses, URLs and returned messages.
#include "unsubrelay/feedback/locate.hpp"

#include "report_parts.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::feedback {

namespace {

constexpr std::size_t min_token = 16;   // far below a real token (~60); filters "/u/me"
constexpr std::size_t max_token = 512;  // token::verify's bound

bool token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/// The token-shaped run at pos, "" when it is too short or too long.
std::string_view token_at(std::string_view text, std::size_t pos) {
  std::size_t end = pos;
  while (end < text.size() && token_char(text[end]) && end - pos <= max_token) ++end;
  const auto n = end - pos;
  return n >= min_token && n <= max_token ? text.substr(pos, n) : std::string_view();
}

void add_unique(std::vector<std::string>& out, std::string_view token, std::size_t max) {
  if (token.empty() || out.size() >= max) return;
  for (const auto& t : out) {
    if (t == token) return;
  }
  out.emplace_back(token);
}

void add_candidate(std::vector<TokenCandidate>& out, TokenSource source, std::string token, std::size_t max) {
  if (token.empty() || out.size() >= max) return;
  for (const auto& c : out) {
    if (c.token == token) return;
  }
  out.push_back({source, std::move(token)});
}

/// The text of every text/plain and text/html part, transfer-decoded.
void body_tokens(std::string_view message, const mime::Part& root, const LocateOptions& o,
                 std::vector<TokenCandidate>& out) {
  std::vector<std::string> notes;
  const auto parts = detail::parts_where(root, [](const mime::Part& p) {
    return p.is_text() && (p.subtype == "plain" || p.subtype == "html") && !p.opaque && p.body_begin < p.end;
  });
  for (const auto* p : parts) {
    if (out.size() >= o.max_candidates) return;
    const auto text = detail::decoded_body(message, *p, o.limits, notes);
    for (auto& t : tokens_in_text(text, o.max_candidates)) add_candidate(out, TokenSource::body, std::move(t), o.max_candidates);
  }
}

}  // namespace

const char* describe(TokenSource s) {
  switch (s) {
    case TokenSource::return_path: return "return-path";
    case TokenSource::original_mail_from: return "original-mail-from";
    case TokenSource::list_unsubscribe: return "list-unsubscribe";
    case TokenSource::body: return "body";
  }
  return "?";
}

std::string address_token(std::string_view address, std::string_view prefix, std::string_view domain) {
  const auto addr = typed_address(address);
  const auto at = addr.rfind('@');
  if (at == std::string::npos || at < prefix.size()) return {};
  if (!istarts_with(addr, prefix)) return {};
  if (!domain.empty() && !iequals(std::string_view(addr).substr(at + 1), domain)) return {};
  const auto token = std::string_view(addr).substr(prefix.size(), at - prefix.size());
  if (token_at(token, 0).size() != token.size()) return {};
  return std::string(token);
}

std::string url_token(std::string_view url) {
  url = trim(url);
  const auto query = url.find_first_of("?#");
  const auto path = url.substr(0, query);
  // /u/TOKEN, possibly followed by /resubscribe: the last "/u/" of the path.
  if (const auto u = path.rfind("/u/"); u != std::string_view::npos) {
    const auto t = token_at(path, u + 3);
    const auto after = u + 3 + t.size();
    if (!t.empty() && (after == path.size() || path[after] == '/')) return std::string(t);
  }
  if (query == std::string_view::npos || url[query] != '?') return {};
  auto params = url.substr(query + 1);
  params = params.substr(0, params.find('#'));
  for (std::size_t pos = 0; pos <= params.size();) {
    const auto amp = params.find('&', pos);
    const auto param = params.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    if (param.starts_with("e=")) {
      const auto t = token_at(param, 2);
      if (!t.empty() && t.size() + 2 == param.size()) return std::string(t);
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return {};
}

std::vector<std::string> tokens_in_text(std::string_view text, std::size_t max_candidates) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size() && out.size() < max_candidates; ++pos) {
    const char c = text[pos];
    std::size_t start = std::string_view::npos;
    if (c == '/' && text.substr(pos, 3) == "/u/") {
      start = pos + 3;
    } else if ((c == '?' || c == '&' || c == ';') && text.substr(pos + 1, 2) == "e=") {
      // "&amp;e=" in HTML: the ';' must close an "&amp".
      if (c == ';' && (pos < 4 || text.substr(pos - 4, 4) != "&amp")) continue;
      start = pos + 3;
    }
    if (start == std::string_view::npos) continue;
    const auto t = token_at(text, start);
    const auto after = start + t.size();
    if (t.empty() || (after < text.size() && token_char(text[after]))) continue;
    add_unique(out, t, max_candidates);
    pos = after - 1;
  }
  return out;
}

std::vector<TokenCandidate> returned_message_tokens(std::string_view returned, const LocateOptions& o) {
  std::vector<TokenCandidate> out;
  std::vector<std::string> notes;
  const auto scanned = detail::scan_report(returned, o.limits, notes);
  const auto& root = scanned.scan.root;
  for (const auto& f : root.fields) {
    if (iequals(f.name, "Return-Path")) {
      add_candidate(out, TokenSource::return_path, address_token(f.value, o.verp_prefix, o.return_path_domain),
                    o.max_candidates);
    }
  }
  for (const auto& f : root.fields) {
    if (!iequals(f.name, "List-Unsubscribe")) continue;
    // "<https://relay/u/TOKEN>, <mailto:u+TOKEN@domain?subject=unsubscribe>" (RFC 2369 §2).
    for (std::size_t open = f.value.find('<'); open != std::string::npos; open = f.value.find('<', open + 1)) {
      const auto close = f.value.find('>', open);
      const auto item = std::string_view(f.value).substr(open + 1, close == std::string::npos ? std::string::npos
                                                                                              : close - open - 1);
      if (istarts_with(item, "mailto:")) {
        const auto address = item.substr(7, item.find('?') == std::string_view::npos ? std::string_view::npos
                                                                                       : item.find('?') - 7);
        add_candidate(out, TokenSource::list_unsubscribe, address_token(address, o.mailto_prefix), o.max_candidates);
      } else {
        add_candidate(out, TokenSource::list_unsubscribe, url_token(item), o.max_candidates);
      }
      if (close == std::string::npos) break;
    }
  }
  if (!scanned.unreadable) body_tokens(returned, root, o, out);
  return out;
}

std::vector<TokenCandidate> complaint_token_candidates(std::string_view message, const FeedbackReport& report,
                                                       const LocateOptions& o) {
  const auto returned = returned_message_text(message, report.returned, report.returned_encoding, o.limits);
  auto found = returned_message_tokens(returned, o);
  std::vector<TokenCandidate> out;
  for (auto& c : found) {
    if (c.source == TokenSource::return_path) add_candidate(out, c.source, std::move(c.token), o.max_candidates);
  }
  add_candidate(out, TokenSource::original_mail_from,
                address_token(report.original_mail_from, o.verp_prefix, o.return_path_domain), o.max_candidates);
  for (auto& c : found) {
    if (c.source != TokenSource::return_path) add_candidate(out, c.source, std::move(c.token), o.max_candidates);
  }
  return out;
}

}  // namespace unsubrelay::feedback
