// import_test.cpp: the suppression import parser: CSV (quotes, BOM, CRLF,
// separators), JSON lines, the SES document, every input split at every
// byte, bounds, and per-row errors with their line numbers.
#include <gtest/gtest.h>

#include <random>

#include "unsubrelay/suppression/import.hpp"

using namespace unsubrelay::suppression;
using namespace std::string_literals;

namespace {

struct Result {
  ImportOutput out;
  std::string fatal;
  Format format = Format::unknown;
};

/// Parses text pushed in chunks of `chunk` bytes (0: all at once).
Result parse(std::string_view text, std::size_t chunk = 0, std::vector<std::string> topics = {"offers", "newsletter"},
             ImportLimits limits = {}) {
  ImportParser p(std::move(topics), limits);
  Result r;
  if (chunk == 0) chunk = text.size() + 1;
  for (std::size_t i = 0; i < text.size(); i += chunk) p.push(text.substr(i, chunk), r.out);
  p.finish(r.out);
  r.fatal = p.fatal();
  r.format = p.format();
  return r;
}

std::string rows_text(const Result& r) {
  std::string s;
  for (const auto& row : r.out.rows) {
    s += std::to_string(row.line) + " " + row.address + " " + name(row.reason) + " " + row.topic + " " +
         std::to_string(row.created) + "\n";
  }
  for (const auto& e : r.out.errors) s += "error " + std::to_string(e.line) + ": " + e.message + "\n";
  if (!r.fatal.empty()) s += "fatal " + r.fatal + "\n";
  return s;
}

const std::string csv =
    "\xEF\xBB\xBF"
    "Name,EmailAddress,reason,topic,created\r\n"
    "\"Smith, Jane\",Jane.Smith@Example.ORG,unsubscribe,offers,2024-05-01T12:00:00Z\r\n"
    "\"Multi\r\nline \"\"quoted\"\" name\",<bob@example.org>,COMPLAINT,,1714564800\r\n"
    "\r\n"
    "x,not-an-address,,,\r\n"
    "y,carol@example.org,bogus,,\r\n"
    "z,dave@example.org,,gardening,\r\n"
    "w,erin@example.org,hard_bounce,newsletter,yesterday\r\n"
    "v,frank@example.org\r\n";

const std::string csv_expected =
    "2 jane.smith@example.org unsubscribe offers 1714564800\n"
    "3 bob@example.org complaint  1714564800\n"
    "10 frank@example.org import  0\n"
    "error 6: 'not-an-address' is not an address (local@domain)\n"
    "error 7: reason 'bogus' is not one of unsubscribe, complaint, hard_bounce, soft_bounce, manual, import (or SES's "
    "BOUNCE, COMPLAINT)\n"
    "error 8: topic 'gardening' is not one of unsubscribe.topics\n"
    "error 9: created 'yesterday' is not a time (unix seconds or ISO 8601 such as 2024-05-01T12:00:00Z)\n";

}  // namespace

TEST(Import, CsvWithQuotesBomCrlfAndBadRows) {
  const auto r = parse(csv);
  EXPECT_EQ(r.format, Format::csv);
  EXPECT_EQ(rows_text(r), csv_expected);
}

TEST(Import, EverySplitGivesTheSameResult) {
  const std::string ses =
      "{\n    \"SuppressedDestinationSummaries\": [\n        {\n            \"EmailAddress\": \"a@example.com\",\n"
      "            \"Reason\": \"BOUNCE\",\n            \"LastUpdateTime\": \"2024-05-01T12:00:00.123000+02:00\"\n"
      "        },\n        {\"EmailAddress\": \"b@example.com\", \"Reason\": \"COMPLAINT\", \"LastUpdateTime\": "
      "1714564800.5}\n    ],\n    \"NextToken\": \"abc\\\"}]\"\n}\n";
  const std::string jsonl =
      "{\"email\": \"x@example.com\", \"reason\": \"manual\"}\r\n\n{\"address\": \"y@example.com\", \"topic\": "
      "\"offers\", \"created\": 1714564800}\nnot json\n[1,2]\n{\"email\": 5}\n{\"email\": [\"z@example.com\"]}";
  for (const auto* text : {&csv, &ses, &jsonl}) {
    const auto whole = rows_text(parse(*text));
    for (std::size_t chunk = 1; chunk < 40; ++chunk) EXPECT_EQ(rows_text(parse(*text, chunk)), whole) << chunk;
  }
  EXPECT_EQ(rows_text(parse(ses)),
            "3 a@example.com hard_bounce  1714557600\n"
            "8 b@example.com complaint  1714564800\n");
  EXPECT_EQ(parse(ses).format, Format::ses_json);
  EXPECT_EQ(rows_text(parse(jsonl)),
            "1 x@example.com manual  0\n"
            "3 y@example.com import offers 1714564800\n"
            "error 4: not a JSON object with an email, address or EmailAddress key\n"
            "error 5: not a JSON object with an email, address or EmailAddress key\n"
            "error 6: '5' is not an address (local@domain)\n"
            "error 7: a field of the object is not a string or a number\n");
  EXPECT_EQ(parse(jsonl).format, Format::json_lines);
}

TEST(Import, SeparatorsAndHeaderNames) {
  EXPECT_EQ(rows_text(parse("email;reason\na@example.com;manual\n")), "2 a@example.com manual  0\n");
  EXPECT_EQ(rows_text(parse("Address\tTopic\na@example.com\toffers\n")), "2 a@example.com import offers 0\n");
  EXPECT_EQ(rows_text(parse("\n\n EMAIL \n\"a@example.com\"\n")), "4 a@example.com import  0\n");
  // A quoted comma is text, not a separator.
  EXPECT_EQ(rows_text(parse("note,email\n\"a, b\",a@example.com\n")), "2 a@example.com import  0\n");
}

TEST(Import, FatalErrorsNameTheLineAndStopEarly) {
  auto r = parse("name,phone\nJane,123\n");
  EXPECT_EQ(r.fatal, "line 1: no address column: the header row must name one of email, address, EmailAddress "
                     "(found: name, phone)");
  EXPECT_TRUE(r.out.rows.empty());
  r = parse("");
  EXPECT_EQ(r.fatal, "line 1: the input is empty: nothing to import");
  r = parse(std::string("\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0", 24) + std::string(5000, '\x01'));
  EXPECT_EQ(r.fatal.substr(0, 40), "line 1: the input is not text (binary da");
  r = parse("{\"SuppressedDestinationSummaries\": [{\"EmailAddress\": \"a@example.com\"},\n{\"EmailAddress\": \"b");
  EXPECT_EQ(rows_text(r), "1 a@example.com import  0\nfatal line 2: the SES document ends early (cut off?): entries "
                          "read up to here are in the report\n");
  r = parse("{\"SuppressedDestinationSummaries\": [{\"EmailAddress\": \"a@example.com\"}] ] }");
  EXPECT_EQ(r.fatal, "line 1: not the JSON of aws sesv2 list-suppressed-destinations: expected ',' or '}', found ']'");
  EXPECT_EQ(r.out.rows.size(), 1u);
}

TEST(Import, LongLinesAreSkippedWithBoundedMemory) {
  ImportLimits small;
  small.max_line_bytes = 100;
  small.max_element_bytes = 100;
  const std::string long_field(5000, 'x');
  auto r = parse("email,note\na@example.com," + long_field + "\nb@example.com,ok\n", 7, {}, small);
  EXPECT_EQ(rows_text(r), "3 b@example.com import  0\nerror 2: longer than 100 bytes: skipped to the next line\n");
  // An unclosed quote cannot swallow the rest of the file: the record is cut at the limit.
  r = parse("email,note\na@example.com,\"open" + long_field + "\nb@example.com,ok\n", 0, {}, small);
  EXPECT_EQ(rows_text(r), "3 b@example.com import  0\nerror 2: longer than 100 bytes: skipped to the next line\n");
  r = parse("{\"email\":\"a@example.com\",\"n\":\"" + long_field + "\"}\n{\"email\":\"b@example.com\"}\n", 3, {}, small);
  EXPECT_EQ(rows_text(r), "2 b@example.com import  0\nerror 1: longer than 100 bytes: skipped to the next line\n");
  r = parse("{\"SuppressedDestinationSummaries\":[{\"EmailAddress\":\"a@example.com\",\"x\":\"" + long_field +
                "\"},\n{\"EmailAddress\":\"b@example.com\"}]}",
            0, {}, small);
  EXPECT_EQ(rows_text(r), "2 b@example.com import  0\nerror 1: an entry longer than 100 bytes: skipped\n");
}

TEST(Import, BinaryRowsAndUnclosedQuotes) {
  auto r = parse("email\na@exa\0mple.com\nb@example.com\n\xff\xfe@example.com\n"s);
  EXPECT_EQ(rows_text(r), "3 b@example.com import  0\nerror 2: binary data (a NUL byte) in the row\n"
                          "error 4: the row is not UTF-8 text\n");
  r = parse("email\na@example.com\n\"b@example.com\n");
  EXPECT_EQ(rows_text(r), "2 a@example.com import  0\nerror 3: a quoted field is not closed before the end of the "
                          "input\n");
}

TEST(Import, Times) {
  EXPECT_EQ(parse_time("2024-05-01"), 1714521600);
  EXPECT_EQ(parse_time("2024-05-01 12:00"), 1714564800);
  EXPECT_EQ(parse_time("2024-05-01T14:00:00+02:00"), 1714564800);
  EXPECT_EQ(parse_time("2024-05-01T07:00:00.5-0500"), 1714564800);
  EXPECT_EQ(parse_time("1714564800000"), 1714564800);  // milliseconds
  EXPECT_FALSE(parse_time("2024-13-01"));
  EXPECT_FALSE(parse_time("2024-05-01T12:00:00 Z"));
  EXPECT_FALSE(parse_time("12:00"));
  EXPECT_FALSE(parse_time("99999999999999999999999"));
}

TEST(Import, Addresses) {
  std::string why;
  EXPECT_EQ(normalise_address("  <Alice@Example.COM> ", why), "alice@example.com");
  EXPECT_EQ(normalise_address("\"a b\"@example.com", why), std::nullopt);
  EXPECT_EQ(normalise_address("jörg@exämple.de", why), "jörg@exämple.de");
  for (const char* bad : {"", "@x", "x@", "a@b c", "a@b,c", "a@b/c"}) EXPECT_FALSE(normalise_address(bad, why)) << bad;
  EXPECT_FALSE(normalise_address(std::string(250, 'a') + "@b.com", why));
}

TEST(Import, RandomInputNeverBreaksTheParser) {
  std::mt19937 rng(13);
  for (int i = 0; i < 300; ++i) {
    std::string text(rng() % 400, '\0');
    for (auto& ch : text) ch = "email,\"\n\r{}[]:a@b.c\\ \x01"[rng() % 21];
    if (i % 3 == 0) text = "{\"SuppressedDestinationSummaries\":[" + text;
    ImportLimits small;
    small.max_line_bytes = 50;
    small.max_element_bytes = 50;
    const auto whole = rows_text(parse(text, 0, {}, small));
    EXPECT_EQ(rows_text(parse(text, 1 + rng() % 9, {}, small)), whole);
  }
}
