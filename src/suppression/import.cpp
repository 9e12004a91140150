// import.cpp: format recognition, row checks, times and addresses of the import parser.
#include "unsubrelay/suppression/import.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <variant>

#include <fmt/format.h>

#include "import_detail.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::suppression {

using namespace detail;

namespace {

constexpr std::size_t sniff_bytes = 1024;  // enough to tell the formats apart and to see binary data
constexpr std::string_view bom = "\xEF\xBB\xBF";

/// Over 5% control bytes (NUL included; not tab, CR, LF) at the start: not a
/// text file (an archive, a spreadsheet, an image). A stray one is a row error.
bool looks_binary(std::string_view head) {
  std::size_t odd = 0;
  for (unsigned char ch : head) {
    if (ch < 32 && ch != '\t' && ch != '\r' && ch != '\n') ++odd;
  }
  return odd * 20 > head.size();
}

/// ',' ';' or tab: whichever the header line (outside quotes) has most of; ',' on a tie.
char detect_separator(std::string_view head) {
  const auto eol = head.find('\n');
  head = head.substr(0, eol);
  std::size_t comma = 0, semicolon = 0, tab = 0;
  bool quoted = false;
  for (char ch : head) {
    if (ch == '"') quoted = !quoted;
    if (quoted) continue;
    comma += ch == ',';
    semicolon += ch == ';';
    tab += ch == '\t';
  }
  if (semicolon > comma && semicolon >= tab) return ';';
  if (tab > comma && tab > semicolon) return '\t';
  return ',';
}

/// The first key of a JSON object at the start of head, or "" (none, or not yet complete).
std::string first_key(std::string_view head) {
  std::size_t i = 1;  // after '{'
  while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
  if (i >= head.size() || head[i] != '"') return {};
  const auto end = head.find('"', i + 1);
  return end == std::string_view::npos ? std::string() : std::string(head.substr(i + 1, end - i - 1));
}

}  // namespace

const char* name(Reason r) {
  switch (r) {
    case Reason::unsubscribe: return "unsubscribe";
    case Reason::complaint: return "complaint";
    case Reason::hard_bounce: return "hard_bounce";
    case Reason::soft_bounce: return "soft_bounce";
    case Reason::manual: return "manual";
    case Reason::import: return "import";
  }
  return "import";
}

std::optional<Reason> parse_reason(std::string_view text) {
  text = trim(text);
  for (auto r : {Reason::unsubscribe, Reason::complaint, Reason::hard_bounce, Reason::soft_bounce, Reason::manual,
                 Reason::import}) {
    if (iequals(text, name(r))) return r;
  }
  if (iequals(text, "BOUNCE")) return Reason::hard_bounce;  // SES
  return std::nullopt;
}

const char* name(Format f) {
  switch (f) {
    case Format::unknown: return "unknown";
    case Format::csv: return "csv";
    case Format::json_lines: return "jsonl";
    case Format::ses_json: return "ses";
  }
  return "unknown";
}

namespace detail {

void Common::fail(std::size_t at, const std::string& why) {
  if (fatal.empty()) fatal = fmt::format("line {}: {}", at, why);
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (b < 0x80) {
      ++i;
      continue;
    }
    if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

bool is_address_column(std::string_view lower) {
  for (const char* n : {"email", "address", "emailaddress", "email_address", "e-mail", "email address"}) {
    if (lower == n) return true;
  }
  return false;
}

void emit_row(const Common& c, std::size_t line, const RawRow& raw, ImportOutput& out) {
  auto error = [&](const std::string& why) { out.errors.push_back({line, why}); };
  for (const auto* text : {&raw.address, &raw.reason, &raw.topic, &raw.created}) {
    if (text->find('\0') != std::string::npos) return error("binary data (a NUL byte) in the row");
    if (!valid_utf8(*text)) return error("the row is not UTF-8 text");
  }
  ImportRow row;
  row.line = line;
  std::string why;
  const auto address = normalise_address(raw.address, why);
  if (!address) return error(why);
  row.address = *address;
  if (!trim(raw.reason).empty()) {
    const auto reason = parse_reason(raw.reason);
    if (!reason) {
      return error(fmt::format("reason '{}' is not one of unsubscribe, complaint, hard_bounce, soft_bounce, manual, "
                               "import (or SES's BOUNCE, COMPLAINT)", printable(trim(raw.reason), 40)));
    }
    row.reason = *reason;
  }
  row.topic = std::string(trim(raw.topic));
  if (!row.topic.empty() && std::find(c.topics.begin(), c.topics.end(), row.topic) == c.topics.end()) {
    return error(fmt::format("topic '{}' is not one of unsubscribe.topics", printable(row.topic, 64)));
  }
  if (!trim(raw.created).empty()) {
    const auto created = parse_time(raw.created);
    if (!created) {
      return error(fmt::format("created '{}' is not a time (unix seconds or ISO 8601 such as 2024-05-01T12:00:00Z)",
                               printable(trim(raw.created), 40)));
    }
    row.created = *created;
  }
  out.rows.push_back(std::move(row));
}

}  // namespace detail

std::optional<std::string> normalise_address(std::string_view text, std::string& why) {
  auto a = trim(text);
  // "Name <addr>" as mail programs and many exports write it: the part in angle brackets.
  if (const auto lt = a.rfind('<'); lt != std::string_view::npos && a.size() >= 2 && a.back() == '>') {
    a = trim(a.substr(lt + 1, a.size() - lt - 2));
  }
  if (a.empty()) {
    why = "no address";
    return std::nullopt;
  }
  if (a.size() > 254) {
    why = "the address is longer than 254 characters";
    return std::nullopt;
  }
  const auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) {
    why = fmt::format("'{}' is not an address (local@domain)", printable(a, 80));
    return std::nullopt;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto ch = static_cast<unsigned char>(a[i]);
    const bool bad = ch <= 32 || ch == 127 || ch == ',' || ch == ';' || ch == '<' || ch == '>' ||
                     (i > at && ch < 128 && !std::isalnum(ch) && ch != '.' && ch != '-' && ch != '[' && ch != ']' &&
                      ch != ':' && ch != '_');
    if (bad) {
      why = fmt::format("'{}' is not an address (local@domain)", printable(a, 80));
      return std::nullopt;
    }
  }
  return to_lower(a);
}

namespace {

/// Reads exactly n digits at pos.
std::optional<int> digits(std::string_view s, std::size_t& pos, std::size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char ch = s[pos + i];
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + (ch - '0');
  }
  pos += n;
  return v;
}

std::optional<long long> parse_unix(std::string_view s) {
  long long v = 0;
  std::size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > 1'000'000'000'000'000LL) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  if (i == 0) return std::nullopt;
  if (i < s.size()) {  // a fraction of a second (aws cli v1 printed 1589983465.947)
    if (s[i] != '.' || i + 1 == s.size()) return std::nullopt;
    for (++i; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
    }
  }
  return v > 100'000'000'000LL ? v / 1000 : v;  // milliseconds, as JavaScript exports write them
}

}  // namespace

std::optional<long long> parse_time(std::string_view text) {
  const auto s = trim(text);
  if (s.empty()) return std::nullopt;
  if (s.size() < 10 || s[4] != '-') return parse_unix(s);
  std::size_t pos = 0;
  std::tm tm{};
  const auto year = digits(s, pos, 4);
  if (!year || pos >= s.size() || s[pos++] != '-') return std::nullopt;
  const auto month = digits(s, pos, 2);
  if (!month || pos >= s.size() || s[pos++] != '-') return std::nullopt;
  const auto day = digits(s, pos, 2);
  if (!day || *month < 1 || *month > 12 || *day < 1 || *day > 31) return std::nullopt;
  tm.tm_year = *year - 1900;
  tm.tm_mon = *month - 1;
  tm.tm_mday = *day;
  long long offset = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return std::nullopt;
    ++pos;
    const auto hour = digits(s, pos, 2);
    if (!hour || pos >= s.size() || s[pos++] != ':') return std::nullopt;
    const auto minute = digits(s, pos, 2);
    if (!minute || *hour > 23 || *minute > 59) return std::nullopt;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      const auto second = digits(s, pos, 2);
      if (!second || *second > 60) return std::nullopt;
      tm.tm_sec = *second;
      if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
      }
    }
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
      ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
      const int sign = s[pos++] == '-' ? -1 : 1;
      const auto oh = digits(s, pos, 2);
      if (!oh) return std::nullopt;
      if (pos < s.size() && s[pos] == ':') ++pos;
      const auto om = digits(s, pos, 2);
      if (!om || *oh > 23 || *om > 59) return std::nullopt;
      offset = sign * (*oh * 3600LL + *om * 60LL);
    }
    if (pos != s.size()) return std::nullopt;
  }
  return static_cast<long long>(timegm(&tm)) - offset;
}

struct ImportParser::Impl {
  Common common;
  Format format = Format::unknown;
  std::string sniff;  // the first bytes, until the format is known
  std::variant<std::monostate, CsvReader, JsonLinesReader, SesReader> reader;

  void decide(ImportOutput& out, bool at_end) {
    std::string_view head(sniff);
    if (head.starts_with(bom)) head.remove_prefix(bom.size());
    const auto first = head.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
      common.fail(1, at_end ? "the input is empty: nothing to import"
                            : "the input starts with over 1 KB of blank space: not an import file");
      return;
    }
    if (looks_binary(head.substr(0, sniff_bytes))) {
      common.fail(1, "the input is not text (binary data); expected CSV, JSON lines or the JSON of aws sesv2 "
                     "list-suppressed-destinations");
      return;
    }
    const auto body = head.substr(first);
    if (body.front() == '{') {
      const auto key = first_key(body);
      if (key == "SuppressedDestinationSummaries" || key == "NextToken") {
        format = Format::ses_json;
        reader.emplace<SesReader>(common);
      } else {
        format = Format::json_lines;
        reader.emplace<JsonLinesReader>(common);
      }
    } else {
      format = Format::csv;
      reader.emplace<CsvReader>(common, detect_separator(head));
    }
    const std::string replay(head);
    sniff.clear();
    sniff.shrink_to_fit();
    feed(replay, out);
  }

  void feed(std::string_view bytes, ImportOutput& out) {
    std::visit(
        [&](auto& r) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(r)>, std::monostate>) r.feed(bytes, out);
        },
        reader);
  }
};

ImportParser::ImportParser(std::vector<std::string> topics, ImportLimits limits) : impl_(std::make_unique<Impl>()) {
  impl_->common.topics = std::move(topics);
  impl_->common.limits = limits;
}

ImportParser::~ImportParser() = default;
ImportParser::ImportParser(ImportParser&&) noexcept = default;

void ImportParser::push(std::string_view bytes, ImportOutput& out) {
  auto& d = *impl_;
  if (!d.common.fatal.empty()) return;
  if (d.format == Format::unknown) {
    const std::size_t want = sniff_bytes + bom.size();
    const auto take = std::min(bytes.size(), want - d.sniff.size());
    d.sniff.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (d.sniff.size() < want) return;
    d.decide(out, false);
    if (!d.common.fatal.empty()) return;
  }
  d.feed(bytes, out);
}

void ImportParser::finish(ImportOutput& out) {
  auto& d = *impl_;
  if (d.format == Format::unknown && d.common.fatal.empty()) d.decide(out, true);
  if (!d.common.fatal.empty()) return;
  std::visit(
      [&](auto& r) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(r)>, std::monostate>) r.finish(out);
      },
      d.reader);
}

Format ImportParser::format() const { return impl_->format; }
const std::string& ImportParser::fatal() const { return impl_->common.fatal; }
std::size_t ImportParser::line() const { return impl_->common.line; }

}  // namespace unsubrelay::suppression
