// processor.cpp: a DSN or ARF report to one store::Feedback (processor.hpp).
#include "unsubrelay/feedback/processor.hpp"

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/feedback/arf.hpp"
#include "unsubrelay/feedback/dsn.hpp"
#include "unsubrelay/feedback/locate.hpp"

namespace unsubrelay::feedback {

namespace {

/// The report of a contact a verified token names.
store::Feedback from_claims(const token::Claims& claims, const char* source, long long now) {
  store::Feedback f;
  f.uid = token::uid_text(claims.uid);
  f.email_id = claims.email_id;
  f.launch_list_id = claims.launch_list_id;
  f.source = source;
  f.time = now;
  return f;
}

/// A report that names no contact we know: recorded and counted, applied to nobody.
store::Feedback nobody(store::FeedbackKind kind, const char* source, long long now, const std::string& queue_id) {
  store::Feedback f;
  f.kind = kind;
  f.source = source;
  f.time = now;
  f.dedup_key = fmt::format("{}:nobody:{}", source, queue_id);
  return f;
}

/// How bad a DSN recipient's outcome is, for picking the one that counts.
int severity(BounceKind k) {
  switch (k) {
    case BounceKind::hard: return 4;
    case BounceKind::blocked: return 3;
    case BounceKind::soft: return 2;
    case BounceKind::unknown: return 1;
    case BounceKind::delivered: return 0;
  }
  return 0;
}

store::FeedbackKind kind_of(BounceKind k) {
  if (k == BounceKind::hard) return store::FeedbackKind::hard_bounce;
  if (k == BounceKind::blocked) return store::FeedbackKind::blocked;
  return store::FeedbackKind::soft_bounce;  // delayed, 4.x.x, or a failure we cannot read (SPEC: soft)
}

Resolution resolve_dsn(std::string_view message, const std::string& token_text, const token::KeySet& keys,
                       long long now, const std::string& queue_id) {
  const auto verified = token::verify(token_text, keys, static_cast<std::uint32_t>(now));
  if (!verified.claims) {
    return {nobody(store::FeedbackKind::soft_bounce, "dsn", now, queue_id), std::nullopt,
            fmt::format("dsn: VERP token not valid ({})", describe(verified.error))};
  }
  auto f = from_claims(*verified.claims, "dsn", now);
  const auto key_id = verified.claims->key_id;
  const auto parsed = parse_dsn(message);
  std::string how;
  if (!parsed.ok()) {
    // SPEC Part 2: the VERP token still names the contact; it counts as a soft bounce.
    f.kind = store::FeedbackKind::soft_bounce;
    f.diagnostic = fmt::format("no delivery status could be read: {}", describe(parsed.error));
    how = "dsn without a readable status";
  } else {
    const DsnRecipient* worst = nullptr;
    BounceKind worst_kind = BounceKind::delivered;
    for (const auto& r : parsed.report.recipients) {
      const auto k = classify(r);
      if (!worst || severity(k) > severity(worst_kind)) {
        worst = &r;
        worst_kind = k;
      }
    }
    if (!worst || worst_kind == BounceKind::delivered) return {std::nullopt, std::nullopt, "dsn: delivered, nothing to record"};
    f.kind = kind_of(worst_kind);
    f.status = worst->status;
    f.diagnostic = worst->diagnostic.empty() ? "Action: " + worst->action : worst->diagnostic;
    how = parsed.report.format == DsnFormat::plain_text ? "dsn plain text" : "dsn";
  }
  // One per launch, contact and kind: a DSN mailed twice, or "delayed" warned twice, counts once.
  f.dedup_key = fmt::format("dsn:{}:{}:{}", f.launch_list_id, f.uid, store::name(f.kind));
  return {f, std::nullopt, how, key_id};
}

std::string arf_detail(const FeedbackReport& report) {
  return fmt::format("Feedback-Type: {}; User-Agent: {}; Source-IP: {}", printable(report.feedback_type, 40),
                     printable(report.user_agent, 100), printable(report.source_ip, 60));
}

/// SPEC Part 2 "Complaints" (issue 22): no token of ours proves the contact.
/// Kept bounded for the operator, applied to nobody; the claimed address is
/// only logged (how), never stored.
Resolution unverified_arf(const FeedbackReport& report, bool had_tokens, const std::string& claimed, long long now,
                          const Origin& origin) {
  store::UnverifiedReport u;
  u.queue_id = origin.queue_id;
  u.source = "arf";
  u.time = now;
  u.detail = arf_detail(report);
  std::string how;
  if (had_tokens) {
    u.reason = "bad_token";
    how = "arf whose tokens do not verify: unverified";
  } else if (!claimed.empty()) {
    u.reason = "address_only";
    how = fmt::format("arf naming <{}> by address only, client not in feedback.trusted_networks: unverified",
                      printable(claimed, 256));
  } else {
    u.reason = "no_contact";
    how = "arf naming no contact: unverified";
  }
  return {std::nullopt, u, how};
}

Resolution resolve_arf(std::string_view message, const Addresses& addresses, const token::KeySet& keys,
                       long long now, const Origin& origin) {
  const auto parsed = parse_arf(message);
  if (!parsed.ok()) return {std::nullopt, std::nullopt, fmt::format("not an ARF report ({})", describe(parsed.error))};
  const auto& report = parsed.report;
  LocateOptions options;
  options.return_path_domain = addresses.return_path_domain();
  const auto candidates = complaint_token_candidates(message, report, options);
  std::optional<store::Feedback> found;
  std::string how, key_id;
  for (const auto& c : candidates) {
    const auto verified = token::verify(c.token, keys, static_cast<std::uint32_t>(now));
    if (!verified.claims) continue;
    key_id = verified.claims->key_id;
    found = from_claims(*verified.claims, "arf", now);
    found->dedup_key = fmt::format("arf:{}:{}", found->launch_list_id, found->uid);
    how = fmt::format("arf, {} token", describe(c.source));
    break;
  }
  const auto rcpt = unredacted_recipient(report);
  // An unredacted Original-Rcpt-To, last in SPEC order, only from a trusted
  // client and only when the returned message carried no token at all: one
  // that fails to verify means a forged or damaged report.
  if (!found && candidates.empty() && !rcpt.empty() && origin.trusted) {
    found.emplace();
    found->address = store::normalise_address(rcpt);
    found->source = "arf";
    found->time = now;
    found->dedup_key = "arf:rcpt:" + found->address;
    how = "arf, Original-Rcpt-To from a trusted network";
  }
  if (!found) return unverified_arf(report, !candidates.empty(), rcpt, now, origin);
  found->kind = store::FeedbackKind::complaint;
  found->status = report.feedback_type;
  found->diagnostic = arf_detail(report);
  return {found, std::nullopt, how, key_id};
}

}  // namespace

Resolution resolve_report(std::string_view message, std::string_view recipient, const Addresses& addresses,
                          const token::KeySet& keys, long long now, const Origin& origin) {
  switch (addresses.classify(recipient)) {
    case AddressKind::verp: return resolve_dsn(message, addresses.verp_token(recipient), keys, now, origin.queue_id);
    case AddressKind::complaint: return resolve_arf(message, addresses, keys, now, origin);
    case AddressKind::none: break;
  }
  return {std::nullopt, std::nullopt, "not a feedback address"};
}

}  // namespace unsubrelay::feedback
