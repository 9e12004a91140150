// import_detail.hpp: the readers behind ImportParser (private to src/suppression).
//
// Each reader takes bytes one push at a time and keeps only its current
// record (CSV), line (JSON lines) or element (SES document); what they share
// (limits, line counter, fatal error, row checks) is in Common.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/suppression/import.hpp"

namespace unsubrelay::suppression::detail {

struct Common {
  std::vector<std::string> topics;
  ImportLimits limits;
  std::size_t line = 1;
  std::string fatal;

  void fail(std::size_t at, const std::string& why);
};

/// The text of one record, before it is checked.
struct RawRow {
  std::string address;
  std::string reason;
  std::string topic;
  std::string created;  // text; or digits for a JSON number
};

/// Checks a record's fields and adds a row or an error for it.
void emit_row(const Common& c, std::size_t line, const RawRow& raw, ImportOutput& out);

/// The column names that hold the address (lower case).
bool is_address_column(std::string_view lower_name);

bool valid_utf8(std::string_view text);

class CsvReader {
 public:
  CsvReader(Common& common, char separator) : c_(common), sep_(separator) {}
  void feed(std::string_view bytes, ImportOutput& out);
  void finish(ImportOutput& out);

 private:
  void end_field();
  void end_record(ImportOutput& out);
  void header(ImportOutput& out);
  void reset();

  Common& c_;
  char sep_;
  bool have_header_ = false;
  int address_ = -1, reason_ = -1, topic_ = -1, created_ = -1;
  std::vector<std::string> fields_;
  std::string field_;
  std::size_t record_bytes_ = 0;
  std::size_t record_line_ = 1;
  bool in_quotes_ = false;
  bool quote_pending_ = false;  // a '"' inside quotes: an escaped quote or the closing one
  bool quoted_ = false;         // the current field started with a quote
  bool skipping_ = false;       // over-long record: dropped up to the next line
};

class JsonLinesReader {
 public:
  explicit JsonLinesReader(Common& common) : c_(common) {}
  void feed(std::string_view bytes, ImportOutput& out);
  void finish(ImportOutput& out);

 private:
  void end_line(ImportOutput& out);

  Common& c_;
  std::string line_;
  bool skipping_ = false;
};

/// Finds where one JSON value ends, a byte at a time, strings and nesting aware.
class ValueScanner {
 public:
  enum class Step { more, ended_with_this, ended_before_this };
  Step next(char ch);
  void reset() { *this = ValueScanner(); }
  bool started() const { return started_; }

 private:
  int depth_ = 0;
  bool started_ = false;
  bool scalar_ = false;
  bool in_string_ = false;
  bool escape_ = false;
};

/// `aws sesv2 list-suppressed-destinations` output, held one element at a time.
class SesReader {
 public:
  explicit SesReader(Common& common) : c_(common) {}
  void feed(std::string_view bytes, ImportOutput& out);
  void finish(ImportOutput& out);

 private:
  enum class State {
    open, key_or_close, key, colon, skip_value, comma_or_close, next_key, array_open, element_or_end, element,
    element_sep, next_element, done
  };
  void step(char ch, ImportOutput& out);
  void element_done(ImportOutput& out);
  void expected(const char* what, char got);

  Common& c_;
  State state_ = State::open;
  std::string key_;
  bool key_escape_ = false;
  ValueScanner value_;
  std::string element_;
  std::size_t element_line_ = 0;
  bool element_too_long_ = false;
};

}  // namespace unsubrelay::suppression::detail
