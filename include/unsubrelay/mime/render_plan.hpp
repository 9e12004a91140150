// render_plan.hpp: parse a message once, render one copy per recipient by splicing.
//
// build_plan() scans the message, decodes every eligible text part, finds
// the placeholders, re-encodes the text around them with our CRLF-only
// encoders, and keeps the result as a list of pieces: byte ranges of the
// original (or of pre-encoded text) and slots for per-recipient values.
// render() only concatenates pieces and encodes the few values, so a copy
// costs about a memory copy of the message (bench/render_bench.cpp).
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::mime {

/// What goes into a slot. url is the List-Unsubscribe link; body_url the
/// link in the text (placeholders, footer), which unsubscribe.page_url moves.
enum class Value : unsigned char { url, mailto, email_id, launch_id, uid, body_url };

/// The per-recipient values of one copy.
struct RecipientValues {
  std::string url;       // BASE/u/TOKEN
  std::string mailto;    // u+TOKEN@domain, or "" when unsubscribe.mailto_domain is unset
  std::string uid;
  std::string body_url;  // PAGE_URL?e=TOKEN, or "" for the same as url
};

struct PlanOptions {
  std::vector<std::string> url_placeholders{"*|UNSUBSCRIBE|*", "{{unsubscribe_url}}"};
  std::string campaign_header = "X-Campaign-Id";
  std::string launch_header = "X-Launch-List-Id";
  std::string launch_kind_header = "X-Launch-Kind";
  std::string list_id_domain;
  bool mailto = false;
  bool ses_tags = false;  // upstream.kind: ses: campaign and launch ids as X-SES-MESSAGE-TAGS
  config::BodyLink body_link = config::BodyLink::footer;
  std::string topic_header;         // "" = topics are not configured
  std::vector<std::string> topics;  // the known topic ids
  std::string feedback_id;          // Feedback-ID template, "" = no header
  std::string strip_field;          // smtp.tenant_header: removed from every copy; "" = none
  /// The longest URL or mailto address a copy can carry (base URL or mailto
  /// domain plus the longest token): decides when a 7bit/8bit line could pass 998.
  std::size_t link_bytes = 400;

  static PlanOptions from(const config::Unsubscribe& u);
};

class RenderPlan {
 public:
  bool campaign() const { return campaign_; }
  bool rewritten() const { return campaign_ && !passthrough_; }
  /// body_link: reject and no placeholder: refuse the message (550 5.7.0).
  bool refused() const { return refused_; }
  bool placeholder_found() const { return placeholder_found_; }
  bool footer_added() const { return footer_added_; }
  const std::string& email_id() const { return email_id_; }
  const std::string& launch_list_id() const { return launch_list_id_; }
  /// The copy's topic (a configured id), or "" when it has none.
  const std::string& topic() const { return topic_; }
  /// The topic header's value when it named no configured topic (then topic() is "").
  const std::string& unknown_topic() const { return unknown_topic_; }
  /// "batch", or "on-event" when the launch kind header says so.
  const std::string& launch_kind() const { return launch_kind_; }
  /// Transactional mail without PlanOptions::strip_field, when it had one (else it goes as it came).
  const std::optional<std::string>& stripped() const { return stripped_; }
  /// What was odd about the message (malformed MIME, skipped parts), for the log.
  const std::vector<std::string>& notes() const { return notes_; }

  std::string render(const RecipientValues& values) const;

  struct Piece {
    enum class Kind : unsigned char { literal, value, base64 } kind = Kind::literal;
    std::string_view text;       // literal
    Value value = Value::url;    // value
    bool html = false;           // value: HTML-escape it
    bool qp = false;             // value: quoted-printable-encode it
    bool soft_break = false;     // value, qp: end with a soft line break
    std::size_t block = 0;       // base64: index into blocks_
  };

 private:
  friend class PlanBuilder;
  void render_value(const Piece& p, const RecipientValues& v, std::string& out) const;

  std::string_view original_;
  std::optional<std::string> stripped_;
  bool campaign_ = false;
  bool passthrough_ = true;
  bool refused_ = false;
  bool placeholder_found_ = false;
  bool footer_added_ = false;
  std::string email_id_;
  std::string launch_list_id_;
  std::string topic_;
  std::string unknown_topic_;
  std::string launch_kind_ = "batch";
  std::vector<std::string> notes_;
  std::vector<Piece> pieces_;
  std::vector<std::vector<Piece>> blocks_;  // decoded pieces of base64 parts, re-encoded per copy
  std::deque<std::string> storage_;         // text the pieces point into, besides the original
};

/// Plans the rewrite of message (which must outlive the plan). default_launch_id
/// is used when the message has no launch header: each message is its own launch.
RenderPlan build_plan(std::string_view message, const PlanOptions& options, const std::string& default_launch_id);

}  // namespace unsubrelay::mime
