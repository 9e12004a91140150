// import_csv.cpp: CSV (RFC 4180) for the import parser, a byte at a time.
//
// Quoted fields may hold separators, doubled quotes and line breaks; a record
// ends at a line break outside quotes (CRLF or LF). A quote in the middle of
// an unquoted field is kept as text, as spreadsheets write it. The first
// record is the header row and names the columns.
#include <fmt/format.h>

#include "import_detail.hpp"
#include "unsubrelay/common/text.hpp"

namespace unsubrelay::suppression::detail {

void CsvReader::reset() {
  fields_.clear();
  field_.clear();
  record_bytes_ = 0;
  in_quotes_ = quote_pending_ = quoted_ = false;
  record_line_ = c_.line;
}

void CsvReader::end_field() {
  fields_.push_back(std::move(field_));
  field_.clear();
  quoted_ = false;
}

void CsvReader::feed(std::string_view bytes, ImportOutput& out) {
  for (const char ch : bytes) {
    if (!c_.fatal.empty()) return;
    if (skipping_) {
      if (ch == '\n') {
        ++c_.line;
        skipping_ = false;
        reset();
      }
      continue;
    }
    if (++record_bytes_ > c_.limits.max_line_bytes) {
      out.errors.push_back({record_line_, fmt::format("longer than {} bytes: skipped to the next line",
                                                      c_.limits.max_line_bytes)});
      if (!have_header_) c_.fail(record_line_, "the header row is too long");
      skipping_ = ch != '\n';
      if (ch == '\n') ++c_.line;
      fields_.clear();
      field_.clear();
      field_.shrink_to_fit();
      if (!skipping_) reset();
      continue;
    }
    if (in_quotes_) {
      if (quote_pending_) {
        quote_pending_ = false;
        if (ch == '"') {
          field_.push_back('"');
          continue;
        }
        in_quotes_ = false;  // that quote closed the field; ch is read below
      } else if (ch == '"') {
        quote_pending_ = true;
        continue;
      } else {
        if (ch == '\n') ++c_.line;
        field_.push_back(ch);
        continue;
      }
    }
    if (ch == sep_) {
      end_field();
    } else if (ch == '\n') {
      if (field_.ends_with('\r')) field_.pop_back();  // CRLF
      end_field();
      ++c_.line;
      end_record(out);
    } else if (ch == '"' && field_.empty() && !quoted_) {
      in_quotes_ = quoted_ = true;
    } else {
      field_.push_back(ch);
    }
  }
}

void CsvReader::finish(ImportOutput& out) {
  if (skipping_ || !c_.fatal.empty()) return;
  if (in_quotes_ && !quote_pending_) {
    out.errors.push_back({record_line_, "a quoted field is not closed before the end of the input"});
    if (!have_header_) c_.fail(record_line_, "the header row has a quoted field that is never closed");
    return;
  }
  if (!field_.empty() || !fields_.empty() || quoted_) {
    end_field();
    end_record(out);
  }
  if (!have_header_) c_.fail(1, "no header row: the first line must name the columns, e.g. email,reason,topic");
}

void CsvReader::header(ImportOutput&) {
  std::string found;
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    const auto name = to_lower(trim(fields_[i]));
    if (address_ < 0 && is_address_column(name)) address_ = static_cast<int>(i);
    if (reason_ < 0 && name == "reason") reason_ = static_cast<int>(i);
    if (topic_ < 0 && name == "topic") topic_ = static_cast<int>(i);
    if (created_ < 0 && (name == "created" || name == "lastupdatetime")) created_ = static_cast<int>(i);
    if (found.size() < 200) found += (found.empty() ? "" : ", ") + printable(trim(fields_[i]), 40);
  }
  if (address_ < 0) {
    c_.fail(record_line_, fmt::format("no address column: the header row must name one of email, address, "
                                      "EmailAddress (found: {})", found.empty() ? "nothing" : found));
  }
  have_header_ = true;
}

void CsvReader::end_record(ImportOutput& out) {
  if (!have_header_) {
    // Blank lines before the header are skipped.
    if (!(fields_.size() == 1 && trim(fields_[0]).empty())) header(out);
    reset();
    return;
  }
  bool blank = true;
  for (const auto& f : fields_) blank &= trim(f).empty();
  if (!blank) {
    auto at = [&](int column) {
      return column >= 0 && static_cast<std::size_t>(column) < fields_.size() ? fields_[column] : std::string();
    };
    emit_row(c_, record_line_, {at(address_), at(reason_), at(topic_), at(created_)}, out);
  }
  reset();
}

}  // namespace unsubrelay::suppression::detail
