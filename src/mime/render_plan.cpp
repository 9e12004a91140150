// render_plan.cpp: placeholder search, header edits, footers, splicing.
#include "unsubrelay/mime/render_plan.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/codec.hpp"
#include "unsubrelay/mime/scanner.hpp"
#include "footer.hpp"

namespace unsubrelay::mime {

namespace {

using Piece = RenderPlan::Piece;

/// Header fields a campaign copy never keeps: ours are re-added, the
/// internal ones are stripped, and signatures the rewrite breaks are dropped.
bool removed_field(const std::string& name, const PlanOptions& o) {
  return iequals(name, o.campaign_header) || iequals(name, o.launch_header) ||
         (!o.launch_kind_header.empty() && iequals(name, o.launch_kind_header)) || iequals(name, "List-Unsubscribe") ||
         iequals(name, "List-Unsubscribe-Post") || iequals(name, "DKIM-Signature") ||
         (o.ses_tags && iequals(name, "X-SES-MESSAGE-TAGS")) ||
         (!o.topic_header.empty() && iequals(name, o.topic_header)) ||
         (!o.feedback_id.empty() && iequals(name, "Feedback-ID")) ||
         (!o.strip_field.empty() && iequals(name, o.strip_field));
}

/// A value in a Feedback-ID field: Gmail splits on ':', so only a plain alphabet.
std::string feedback_field(std::string_view v) {
  std::string out;
  for (char c : v) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '-');
  return out;
}

std::string feedback_id(std::string text, const std::string& email_id, const std::string& launch,
                        const std::string& topic) {
  const std::pair<std::string_view, std::string> values[] = {
      {"{email_id}", feedback_field(email_id)}, {"{launch_list_id}", feedback_field(launch)}, {"{topic}", feedback_field(topic)}};
  for (const auto& [name, value] : values) {
    for (auto pos = text.find(name); pos != std::string::npos; pos = text.find(name, pos + value.size())) {
      text.replace(pos, name.size(), value);
    }
  }
  return text;
}

/// An SES message tag value: letters, digits, '_', '-', '.', '@' (SES's rule), at most 256.
std::string ses_tag_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (out.size() < 256 && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '@')) {
      out.push_back(c);
    }
  }
  return out;
}

/// Charsets in which an ASCII byte is always that ASCII character.
bool ascii_compatible(const std::string& charset) {
  for (const char* bad : {"utf-16", "utf-32", "ucs-2", "ucs-4", "iso-2022", "hz-gb", "utf-7"}) {
    if (charset.starts_with(bad)) return false;
  }
  return true;
}

/// An identifier from a header: printable ASCII without spaces, at most 64 bytes.
std::string clean_id(std::string_view v) {
  std::string out;
  for (char c : trim(v)) {
    if (c > 32 && c < 127 && out.size() < 64) out.push_back(c);
  }
  return out;
}

struct Match {
  std::size_t pos;
  std::size_t len;
  Value value;
};

/// One eligible text part and what happens to it.
struct TextPart {
  const Part* part;
  std::string decoded;
  std::vector<Match> matches;
  bool footer = false;
  bool identity = false;  // 7bit, 8bit, binary, or an unknown encoding read as 8bit
  bool to_qp = false;  // identity part re-encoded as quoted-printable (a line would pass 998)
};

constexpr std::size_t max_line = 998;  // RFC 5322 §2.1.1, without the CRLF
constexpr std::size_t footer_bytes = 200;  // the HTML footer's own text, around its link

bool identity_encoding(const std::string& encoding) {
  return encoding == "7bit" || encoding == "8bit" || encoding == "binary" || encoding.empty();
}

}  // namespace

PlanOptions PlanOptions::from(const config::Unsubscribe& u) {
  PlanOptions o;
  o.url_placeholders = u.placeholders;
  o.campaign_header = u.campaign_header;
  o.launch_header = u.launch_header;
  o.launch_kind_header = u.launch_kind_header;
  o.list_id_domain = u.list_id_domain;
  o.mailto = !u.mailto_domain.empty();
  o.body_link = u.body_link;
  if (!u.topics.empty()) o.topic_header = u.topic_header;
  for (const auto& t : u.topics) o.topics.push_back(t.id);
  o.feedback_id = u.feedback_id;
  // A token is at most about 340 characters (both ids and the topic at their 64-byte limit).
  o.link_bytes = std::max({u.base_url.size() + 3, u.mailto_domain.size() + 3, u.page_url.size() + 3}) + 340;
  return o;
}

class PlanBuilder {
 public:
  PlanBuilder(std::string_view message, const PlanOptions& options, RenderPlan& plan)
      : msg_(message), o_(options), plan_(plan) {}

  void build(const std::string& default_launch_id) {
    plan_.original_ = msg_;
    auto scanned = scan(msg_);
    for (auto& n : scanned.notes) plan_.notes_.push_back(std::move(n));
    if (!scanned.ok) {
      plan_.notes_.push_back("message forwarded unchanged: its header could not be parsed safely");
      return;
    }
    const Part& root = scanned.root;
    collect(root);
    const auto campaign_header = field_value(root, o_.campaign_header);
    bool any = false;
    for (const auto& t : text_) any |= !t.matches.empty();
    plan_.campaign_ = !campaign_header.empty() || any;
    if (!plan_.campaign_) {  // transactional mail passes through byte for byte, less strip_field
      if (!o_.strip_field.empty()) plan_.stripped_ = without_field(msg_, root, o_.strip_field);
      return;
    }

    plan_.placeholder_found_ = any;
    plan_.email_id_ = clean_id(campaign_header);
    const auto launch = clean_id(field_value(root, o_.launch_header));
    plan_.launch_list_id_ = launch.empty() ? default_launch_id : launch;
    if (!o_.launch_kind_header.empty() && iequals(trim(field_value(root, o_.launch_kind_header)), "on-event")) {
      plan_.launch_kind_ = "on-event";
    }
    if (!o_.topic_header.empty()) read_topic(field_value(root, o_.topic_header));
    if (!any) no_placeholder(root);
    plan_.passthrough_ = false;
    for (auto& t : text_) t.to_qp = line_would_overflow(t);
    emit_header(root);
    emit_body(root);
  }

 private:
  // Finds the text parts that may be rewritten and their placeholders.
  void collect(const Part& p) {
    if (p.opaque || p.attachment) return;  // nothing inside an attachment is the visible body
    if (p.is_multipart()) {
      for (const auto& c : p.children) collect(c);
      return;
    }
    if (!p.is_text()) return;
    if (!ascii_compatible(p.charset)) {
      plan_.notes_.push_back(fmt::format("text part in charset {} left untouched", p.charset));
      return;
    }
    const auto raw = msg_.substr(p.body_begin, p.end - p.body_begin);
    TextPart t{&p, {}, {}};
    if (p.encoding == "quoted-printable") {
      t.decoded = qp_decode(raw);
    } else if (p.encoding == "base64") {
      auto d = base64_decode(raw);
      if (!d) {
        plan_.notes_.push_back("text part with invalid base64 left untouched");
        return;
      }
      t.decoded = std::move(*d);
    } else if (identity_encoding(p.encoding) || readable_as_8bit(p.encoding, raw)) {
      // An unknown encoding ("7-bit", "plain") over plain lines: mail readers show the bytes as they are.
      if (!identity_encoding(p.encoding)) {
        plan_.notes_.push_back(fmt::format("text part with unknown encoding {} read as 8bit", printable(p.encoding, 40)));
      }
      t.identity = true;
      t.decoded = std::string(raw);
    } else {
      plan_.notes_.push_back(fmt::format("text part with unknown encoding {} left untouched", printable(p.encoding, 40)));
      return;
    }
    find_placeholders(t);
    text_.push_back(std::move(t));
  }

  void find_placeholders(TextPart& t) {
    std::vector<std::pair<std::string_view, Value>> patterns;
    for (const auto& p : o_.url_placeholders) {
      if (!p.empty()) patterns.emplace_back(p, Value::body_url);
    }
    patterns.emplace_back("$cid$", Value::email_id);
    patterns.emplace_back("$llid$", Value::launch_id);
    patterns.emplace_back("$uid$", Value::uid);
    const std::string_view text(t.decoded);
    std::size_t pos = 0;
    for (;;) {
      std::size_t best = std::string_view::npos, len = 0;
      Value value = Value::url;
      for (const auto& [pattern, v] : patterns) {
        const auto hit = text.find(pattern, pos);
        if (hit < best) {
          best = hit;
          len = pattern.size();
          value = v;
        }
      }
      if (best == std::string_view::npos) break;
      t.matches.push_back({best, len, value});
      pos = best + len;
    }
  }

  /// A 7bit/8bit part whose line with a placeholder (or the HTML footer) could
  /// pass 998 characters once the value is in: it is sent as quoted-printable,
  /// whose soft line breaks keep every line short. The text is unchanged.
  bool line_would_overflow(const TextPart& t) const {
    if (!t.identity) return false;
    const std::string_view text(t.decoded);
    std::size_t line_start = std::string_view::npos, grown = 0;
    auto check = [&](std::size_t pos, std::size_t removed, std::size_t added) {
      const auto start = text.find_last_of("\r\n", pos == 0 ? 0 : pos - 1);
      const std::size_t begin = start == std::string_view::npos || pos == 0 ? 0 : start + 1;
      if (begin != line_start) {
        line_start = begin;
        grown = 0;
      }
      grown += added - std::min(added, removed);
      auto end = text.find_first_of("\r\n", pos);
      if (end == std::string_view::npos) end = text.size();
      return end - begin + grown > max_line;
    };
    auto longest = [&](Value v) -> std::size_t {
      switch (v) {
        case Value::url:
        case Value::body_url:
        case Value::mailto: return o_.link_bytes;
        case Value::email_id: return html_escape(plan_.email_id_).size();
        case Value::launch_id: return html_escape(plan_.launch_list_id_).size();
        case Value::uid: return 22;
      }
      return o_.link_bytes;
    };
    for (const auto& m : t.matches) {
      if (check(m.pos, m.len, longest(m.value))) return true;
    }
    if (t.footer && t.part->subtype == "html" && check(footer::html_at(text), 0, footer_bytes + o_.link_bytes)) {
      return true;
    }
    return false;
  }

  /// The Content-Transfer-Encoding field a part converted to quoted-printable gets.
  static constexpr std::string_view qp_field = "Content-Transfer-Encoding: quoted-printable\r\n";

  /// Copies a part's header, swapping its Content-Transfer-Encoding for quoted-printable.
  void emit_part_header_as_qp(const Part& part) {
    auto& out = plan_.pieces_;
    std::size_t cursor = part.begin;
    for (const auto& f : part.fields) {
      if (!iequals(f.name, "Content-Transfer-Encoding")) continue;
      literal(out, msg_.substr(cursor, f.begin - cursor));
      cursor = f.end;
    }
    const auto header_end = std::max(cursor, part.fields.empty() ? part.begin : part.fields.back().end);
    literal(out, msg_.substr(cursor, header_end - cursor));
    literal(out, qp_field);
    literal(out, msg_.substr(header_end, part.body_begin - header_end));
  }

  /// The topic header names a configured topic; anything else leaves the copy without one.
  void read_topic(std::string_view value) {
    const auto id = std::string(trim(value));
    if (id.empty()) return;
    if (std::find(o_.topics.begin(), o_.topics.end(), id) != o_.topics.end()) {
      plan_.topic_ = id;
    } else {
      plan_.unknown_topic_ = id.substr(0, 200);
    }
  }

  // Campaign mail without a placeholder: Gmail and Yahoo want a visible link.
  void no_placeholder(const Part& root) {
    switch (o_.body_link) {
      case config::BodyLink::reject:
        plan_.refused_ = true;
        return;
      case config::BodyLink::warn:
        plan_.notes_.push_back("campaign message has no unsubscribe placeholder and no visible link (body_link: warn)");
        return;
      case config::BodyLink::footer:
        break;
    }
    bool plain = false, html = false;
    for (auto& t : text_) {
      if (!plain && t.part->subtype == "plain") plain = t.footer = true;
      if (!html && t.part->subtype == "html") html = t.footer = true;
    }
    plan_.footer_added_ = true;
    const auto carries = [this](const Part& p) {
      return std::any_of(text_.begin(), text_.end(), [&p](const TextPart& t) { return t.footer && t.part == &p; });
    };
    if (footer::shown(root, carries)) return;
    new_part_ = footer::new_part_for(root);
    if (new_part_ == footer::NewPart::wrap) boundary_ = footer::unique_boundary(msg_);
    plan_.notes_.push_back(fmt::format("{}: {}", plain || html ? "a reader may show no text part with the unsubscribe footer"
                                                                : "no text part can carry the unsubscribe footer",
                                       new_part_ == footer::NewPart::insert
                                           ? "added as a new text/plain part"
                                           : "message wrapped in multipart/mixed with a new text/plain part"));
  }

  std::string_view keep(std::string text) { return plan_.storage_.emplace_back(std::move(text)); }

  void literal(std::vector<Piece>& out, std::string_view text) {
    if (!text.empty()) out.push_back(Piece{Piece::Kind::literal, text});
  }

  void value(std::vector<Piece>& out, Value v, bool html) {
    Piece p{Piece::Kind::value};
    p.value = v;
    p.html = html;
    out.push_back(p);
  }

  void emit_header(const Part& root) {
    auto& out = plan_.pieces_;
    // New fields go after the leading trace fields (our Received:), before the rest.
    std::size_t insert_at = 0;
    for (const auto& f : root.fields) {
      if (!iequals(f.name, "Received") && !iequals(f.name, "Return-Path")) break;
      insert_at = f.end;
    }
    bool root_to_qp = false;
    for (const auto& t : text_) root_to_qp |= t.to_qp && t.part == &root;
    const bool wrap = new_part_ == footer::NewPart::wrap;
    std::size_t cursor = 0;
    auto copy_to = [&](std::size_t end) {
      // Copies [cursor, end) without the removed fields.
      for (const auto& f : root.fields) {
        const bool drop = removed_field(f.name, o_) || (root_to_qp && iequals(f.name, "Content-Transfer-Encoding")) ||
                          (wrap && footer::content_field(f.name));
        if (f.begin < cursor || f.end > end || !drop) continue;
        literal(out, msg_.substr(cursor, f.begin - cursor));
        cursor = f.end;
      }
      literal(out, msg_.substr(cursor, end - cursor));
      cursor = end;
    };
    copy_to(insert_at);
    literal(out, "List-Unsubscribe: <");
    value(out, Value::url, false);
    if (o_.mailto) {
      literal(out, ">, <mailto:");
      value(out, Value::mailto, false);
    }
    literal(out, ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    if (!o_.feedback_id.empty()) {
      // Gmail's feedback loop groups complaints by these fields; DKIM signs it (dkim/signer.cpp).
      literal(out, keep(fmt::format("Feedback-ID: {}\r\n", feedback_id(o_.feedback_id, plan_.email_id_,
                                                                        plan_.launch_list_id_, plan_.topic_))));
    }
    if (o_.ses_tags) {
      // SES reports tags in its bounce, complaint and delivery events: the
      // campaign and launch ids join the sender's own tags.
      const auto existing = field_value(root, "X-SES-MESSAGE-TAGS");
      std::string tags = existing.empty() ? "" : existing + ", ";
      tags += fmt::format("email_id={}, launch_list_id={}", ses_tag_value(plan_.email_id_),
                          ses_tag_value(plan_.launch_list_id_));
      literal(out, keep(fmt::format("X-SES-MESSAGE-TAGS: {}\r\n", printable(tags, 900))));
    }
    if (!o_.list_id_domain.empty() && field_value(root, "List-Id").empty()) {
      std::string label;
      for (char c : plan_.email_id_) label.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '-');
      if (label.empty()) label = "campaign";
      literal(out, keep(fmt::format("List-Id: <{}.{}>\r\n", label, o_.list_id_domain)));
    }
    if (root_to_qp) literal(out, qp_field);
    if (wrap) {
      if (field_value(root, "MIME-Version").empty()) literal(out, "MIME-Version: 1.0\r\n");
      literal(out, keep(footer::wrap_content_type(boundary_)));
    }
    copy_to(root.body_begin);
    if (wrap) emit_wrapped_header(root);
  }

  void emit_body(const Part& root) {
    auto& out = plan_.pieces_;
    std::size_t cursor = root.body_begin;
    for (auto& t : text_) {
      if (t.matches.empty() && !t.footer) continue;
      if (t.to_qp && t.part->begin >= cursor && t.part->begin > 0) {
        literal(out, msg_.substr(cursor, t.part->begin - cursor));
        emit_part_header_as_qp(*t.part);
      } else {
        literal(out, msg_.substr(cursor, t.part->body_begin - cursor));
      }
      emit_text_part(t);
      cursor = t.part->end;
    }
    if (new_part_ == footer::NewPart::insert) {
      // After the last part's content, before the CRLF and closing delimiter that follow it.
      const auto at = root.children.back().end;
      literal(out, msg_.substr(cursor, at - cursor));
      footer_part(footer::inserted_part(root));
      cursor = at;
    }
    literal(out, msg_.substr(cursor));
    if (new_part_ == footer::NewPart::wrap) {
      literal(out, keep(footer::closing_of_wrapped(root)));
      footer_part(footer::wrapped_part(boundary_));
    }
  }

  /// wrap: the whole original body, with the top level's Content-* fields,
  /// becomes the first part of the new multipart/mixed (emit_body adds the
  /// footer part after it). This is that first part's delimiter and header.
  void emit_wrapped_header(const Part& root) {
    auto& out = plan_.pieces_;
    if (!blank_line_before(root.body_begin)) literal(out, "\r\n");  // the header ended without one
    literal(out, keep(fmt::format("--{}\r\n", boundary_)));
    for (const auto& f : root.fields) {
      if (!footer::content_field(f.name)) continue;
      const auto field = msg_.substr(f.begin, f.end - f.begin);
      literal(out, field);
      if (!field.ends_with('\n')) literal(out, "\r\n");  // the last field of a header without an end
    }
    literal(out, "\r\n");
  }

  void footer_part(const footer::Around& around) {
    literal(plan_.pieces_, keep(around.before));
    value(plan_.pieces_, Value::url, false);
    literal(plan_.pieces_, keep(around.after));
  }

  /// True when the header block that ends at pos ended with an empty line.
  bool blank_line_before(std::size_t pos) const {
    const auto head = msg_.substr(0, pos);
    return head.ends_with("\n\r\n") || head.ends_with("\n\n") || head == "\r\n" || head == "\n";
  }

  /// The decoded text of a part as literal and value pieces (footer included).
  std::vector<Piece> decoded_pieces(const TextPart& t, bool identity, bool keep_decoded = false) {
    const bool html = t.part->subtype == "html";
    const std::string_view text(t.decoded);
    const std::size_t footer_at = t.footer && html ? footer::html_at(text) : text.size();
    const auto around = t.footer ? (html ? footer::html() : footer::plain(text)) : footer::Around{};
    const auto& footer_before = around.before;
    const auto& footer_after = around.after;
    // The original text is in the message itself when there is no encoding to
    // undo; decoded text that pieces keep pointing to (base64) moves into the plan.
    const std::string_view decoded = keep_decoded ? keep(t.decoded) : std::string_view(t.decoded);
    auto slice = [&](std::size_t from, std::size_t to) -> std::string_view {
      if (identity) return msg_.substr(t.part->body_begin + from, to - from);
      return decoded.substr(from, to - from);
    };
    std::vector<Piece> pieces;
    std::size_t pos = 0;
    bool footer_done = !t.footer;
    for (const auto& m : t.matches) {
      if (!footer_done && footer_at <= m.pos) {
        literal(pieces, slice(pos, footer_at));
        literal(pieces, keep(footer_before));
        value(pieces, Value::body_url, html);
        literal(pieces, keep(footer_after));
        pos = footer_at;
        footer_done = true;
      }
      literal(pieces, slice(pos, m.pos));
      value(pieces, m.value, html);
      pos = m.pos + m.len;
    }
    if (!footer_done) {
      literal(pieces, slice(pos, footer_at));
      literal(pieces, keep(footer_before));
      value(pieces, Value::body_url, html);
      literal(pieces, keep(footer_after));
      pos = footer_at;
    }
    literal(pieces, slice(pos, text.size()));
    return pieces;
  }

  void emit_text_part(const TextPart& t) {
    auto& out = plan_.pieces_;
    const auto& enc = t.part->encoding;
    if (enc == "base64") {
      const auto raw = msg_.substr(t.part->body_begin, t.part->end - t.part->body_begin);
      plan_.blocks_.push_back(decoded_pieces(t, false, true));
      Piece p{Piece::Kind::base64};
      p.block = plan_.blocks_.size() - 1;
      p.soft_break = raw.ends_with("\n");  // for base64 pieces: the body ends with a line break
      out.push_back(p);
      return;
    }
    if (enc != "quoted-printable" && !t.to_qp) {
      for (const auto& p : decoded_pieces(t, true)) out.push_back(p);
      return;
    }
    // Quoted-printable: every run of text is encoded once, here; a soft line
    // break before each value lets the value start a fresh encoded line, so a
    // copy is spliced from pre-encoded runs and a few encoded values.
    const auto pieces = decoded_pieces(t, false);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      auto p = pieces[i];
      const bool more = i + 1 < pieces.size();
      if (p.kind == Piece::Kind::literal) {
        std::string encoded;
        qp_encode(p.text, encoded, more && pieces[i + 1].kind == Piece::Kind::value);
        literal(out, keep(std::move(encoded)));
      } else {
        p.qp = true;
        p.soft_break = more;
        out.push_back(p);
      }
    }
  }

  std::string_view msg_;
  const PlanOptions& o_;
  RenderPlan& plan_;
  std::vector<TextPart> text_;
  footer::NewPart new_part_ = footer::NewPart::none;
  std::string boundary_;  // wrap: the new multipart's
};

RenderPlan build_plan(std::string_view message, const PlanOptions& options, const std::string& default_launch_id) {
  RenderPlan plan;
  PlanBuilder(message, options, plan).build(default_launch_id);
  return plan;
}

void RenderPlan::render_value(const Piece& p, const RecipientValues& v, std::string& out) const {
  std::string_view text;
  switch (p.value) {
    case Value::url: text = v.url; break;
    case Value::body_url: text = v.body_url.empty() ? v.url : v.body_url; break;
    case Value::mailto: text = v.mailto; break;
    case Value::email_id: text = email_id_; break;
    case Value::launch_id: text = launch_list_id_; break;
    case Value::uid: text = v.uid; break;
  }
  std::string escaped;
  if (p.html) {
    escaped = html_escape(text);
    text = escaped;
  }
  if (p.qp) {
    qp_encode(text, out, p.soft_break);
  } else {
    out.append(text);
  }
}

std::string RenderPlan::render(const RecipientValues& values) const {
  if (!rewritten()) return std::string(original_);
  std::string out;
  out.reserve(original_.size() + 1024);
  for (const auto& p : pieces_) {
    switch (p.kind) {
      case Piece::Kind::literal:
        out.append(p.text);
        break;
      case Piece::Kind::value:
        render_value(p, values, out);
        break;
      case Piece::Kind::base64: {
        std::string decoded;
        for (const auto& d : blocks_[p.block]) {
          if (d.kind == Piece::Kind::literal) {
            decoded.append(d.text);
          } else {
            render_value(d, values, decoded);
          }
        }
        base64_encode(decoded, out);
        // Inside a multipart the delimiter's CRLF follows the body; keep the original's ending.
        if (!p.soft_break && out.ends_with("\r\n")) out.resize(out.size() - 2);
        break;
      }
    }
  }
  return out;
}

}  // namespace unsubrelay::mime
