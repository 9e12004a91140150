// import_json.cpp: JSON lines, and the SES document read one element at a time.
//
// `aws sesv2 list-suppressed-destinations` prints one JSON document whose
// array can hold millions of entries. SesReader walks its top level with a
// small state machine (keys, and ValueScanner to skip values it does not
// need such as NextToken), and holds only the current array element, which
// nlohmann::json then parses. Memory stays at one element (max_element_bytes).
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "import_detail.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::suppression::detail {

namespace {

using nlohmann::json;

bool space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/// A member of a JSON object whose key matches one of names, case-insensitively, as text.
std::string member(const json& object, std::initializer_list<const char*> names) {
  for (const auto& [key, value] : object.items()) {
    for (const char* n : names) {
      if (!iequals(key, n)) continue;
      if (value.is_string()) return value.get<std::string>();
      if (value.is_number_integer()) return std::to_string(value.get<long long>());
      if (value.is_number_unsigned()) return std::to_string(value.get<unsigned long long>());
      if (value.is_number_float()) return fmt::format("{:.3f}", value.get<double>());
      return value.is_null() ? std::string() : std::string("\x01");  // present but not text: refused below
    }
  }
  return {};
}

/// One JSON object (a line, or an element of the SES array) as a row.
void object_row(const Common& c, std::size_t line, std::string_view text, ImportOutput& out) {
  const auto parsed = json::parse(text.begin(), text.end(), nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    out.errors.push_back({line, "not a JSON object with an email, address or EmailAddress key"});
    return;
  }
  RawRow raw{member(parsed, {"email", "address", "EmailAddress", "email_address"}), member(parsed, {"reason"}),
             member(parsed, {"topic"}), member(parsed, {"created", "LastUpdateTime"})};
  for (auto* field : {&raw.address, &raw.reason, &raw.topic, &raw.created}) {
    if (*field == "\x01") {
      out.errors.push_back({line, "a field of the object is not a string or a number"});
      return;
    }
  }
  emit_row(c, line, raw, out);
}

}  // namespace

void JsonLinesReader::feed(std::string_view bytes, ImportOutput& out) {
  for (const char ch : bytes) {
    if (ch == '\n') {
      if (!skipping_) end_line(out);
      skipping_ = false;
      line_.clear();
      ++c_.line;
      continue;
    }
    if (skipping_) continue;
    if (line_.size() >= c_.limits.max_line_bytes) {
      out.errors.push_back({c_.line, fmt::format("longer than {} bytes: skipped to the next line",
                                                 c_.limits.max_line_bytes)});
      skipping_ = true;
      line_.clear();
      line_.shrink_to_fit();
      continue;
    }
    line_.push_back(ch);
  }
}

void JsonLinesReader::end_line(ImportOutput& out) {
  const auto text = trim(line_.ends_with('\r') ? std::string_view(line_).substr(0, line_.size() - 1)
                                              : std::string_view(line_));
  if (text.find_first_not_of(" \t\r") == std::string_view::npos) return;
  object_row(c_, c_.line, text, out);
}

void JsonLinesReader::finish(ImportOutput& out) {
  if (!skipping_ && !line_.empty()) end_line(out);
  line_.clear();
}

ValueScanner::Step ValueScanner::next(char ch) {
  if (!started_) {
    started_ = true;
    if (ch == '"') {
      in_string_ = true;
      return Step::more;
    }
    if (ch == '{' || ch == '[') {
      depth_ = 1;
      return Step::more;
    }
    scalar_ = true;  // a number, true, false or null
    return Step::more;
  }
  if (scalar_) return space(ch) || ch == ',' || ch == '}' || ch == ']' ? Step::ended_before_this : Step::more;
  if (in_string_) {
    if (escape_) {
      escape_ = false;
    } else if (ch == '\\') {
      escape_ = true;
    } else if (ch == '"') {
      in_string_ = false;
      if (depth_ == 0) return Step::ended_with_this;
    }
    return Step::more;
  }
  if (ch == '"') {
    in_string_ = true;
  } else if (ch == '{' || ch == '[') {
    ++depth_;
  } else if (ch == '}' || ch == ']') {
    if (--depth_ == 0) return Step::ended_with_this;
  }
  return Step::more;
}

void SesReader::expected(const char* what, char got) {
  c_.fail(c_.line, fmt::format("not the JSON of aws sesv2 list-suppressed-destinations: expected {}, found '{}'",
                               what, printable(std::string_view(&got, 1), 8)));
}

void SesReader::element_done(ImportOutput& out) {
  if (element_too_long_) {
    out.errors.push_back({element_line_, fmt::format("an entry longer than {} bytes: skipped",
                                                     c_.limits.max_element_bytes)});
  } else {
    object_row(c_, element_line_, element_, out);
  }
  element_.clear();
  element_too_long_ = false;
}

void SesReader::step(char ch, ImportOutput& out) {
  switch (state_) {
    case State::open:
      if (ch == '{') state_ = State::key_or_close;
      else if (!space(ch)) expected("'{'", ch);
      return;
    case State::key_or_close:
    case State::next_key:
      if (ch == '"') {
        key_.clear();
        state_ = State::key;
      } else if (ch == '}' && state_ == State::key_or_close) {
        state_ = State::done;
      } else if (!space(ch)) {
        expected("a key", ch);
      }
      return;
    case State::key:
      if (key_escape_) {
        key_escape_ = false;
      } else if (ch == '\\') {
        key_escape_ = true;
      } else if (ch == '"') {
        state_ = State::colon;
        return;
      }
      if (key_.size() < 256) key_.push_back(ch);
      return;
    case State::colon:
      if (ch == ':') {
        state_ = key_ == "SuppressedDestinationSummaries" ? State::array_open : State::skip_value;
        value_.reset();
      } else if (!space(ch)) {
        expected("':'", ch);
      }
      return;
    case State::skip_value:
      if (space(ch) && !value_.started()) return;
      switch (value_.next(ch)) {
        case ValueScanner::Step::more: return;
        case ValueScanner::Step::ended_with_this: state_ = State::comma_or_close; return;
        case ValueScanner::Step::ended_before_this: state_ = State::comma_or_close; step(ch, out); return;
      }
      return;
    case State::comma_or_close:
      if (ch == ',') state_ = State::next_key;
      else if (ch == '}') state_ = State::done;
      else if (!space(ch)) expected("',' or '}'", ch);
      return;
    case State::array_open:
      if (ch == '[') state_ = State::element_or_end;
      else if (!space(ch)) expected("'[' after SuppressedDestinationSummaries", ch);
      return;
    case State::element_or_end:
    case State::next_element:
      if (ch == '{') {
        state_ = State::element;
        element_line_ = c_.line;
        value_.reset();
        value_.next(ch);
        element_.push_back(ch);
      } else if (ch == ']' && state_ == State::element_or_end) {
        state_ = State::comma_or_close;
      } else if (!space(ch)) {
        expected("an entry '{'", ch);
      }
      return;
    case State::element:
      if (!element_too_long_ && element_.size() < c_.limits.max_element_bytes) {
        element_.push_back(ch);
      } else if (!element_too_long_) {
        element_too_long_ = true;  // scanned on to its end, not kept
        element_.clear();
      }
      if (value_.next(ch) == ValueScanner::Step::ended_with_this) {
        element_done(out);
        state_ = State::element_sep;
      }
      return;
    case State::element_sep:
      if (ch == ',') state_ = State::next_element;
      else if (ch == ']') state_ = State::comma_or_close;
      else if (!space(ch)) expected("',' or ']' between entries", ch);
      return;
    case State::done:
      if (!space(ch)) expected("nothing after the end of the document", ch);
      return;
  }
}

void SesReader::feed(std::string_view bytes, ImportOutput& out) {
  for (const char ch : bytes) {
    if (!c_.fatal.empty()) return;
    step(ch, out);
    if (ch == '\n') ++c_.line;
  }
}

void SesReader::finish(ImportOutput&) {
  if (c_.fatal.empty() && state_ != State::done) {
    c_.fail(c_.line, "the SES document ends early (cut off?): entries read up to here are in the report");
  }
}

}  // namespace unsubrelay::suppression::detail
