// text.hpp: small string helpers shared by every component.
//
// printable() is how client-supplied text reaches a log line: truncated and
// escaped, as Postfix's printable() and "%.100s" do, so a client can neither
// flood the log nor forge log lines with embedded CR/LF.
#pragma once

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <string_view>

namespace unsubrelay {

/// Escapes control and non-ASCII bytes as \xNN and truncates to max_len bytes.
std::string printable(std::string_view text, std::size_t max_len = 100);

/// ASCII case-insensitive equality (SMTP verbs, header names, parameters).
bool iequals(std::string_view a, std::string_view b);

/// True when text starts with prefix, ignoring ASCII case.
bool istarts_with(std::string_view text, std::string_view prefix);

std::string to_upper(std::string_view text);
std::string to_lower(std::string_view text);

/// Removes leading and trailing spaces and tabs.
std::string_view trim(std::string_view text);

/// RFC 5322 date-time in the local time zone, for Received: and Date: headers.
std::string rfc5322_date(long long unix_seconds);

/// Bytes as lower-case hexadecimal, two digits each (HMACs in signatures and hashes).
std::string hex(std::span<const unsigned char> bytes);

/// Decodes application/x-www-form-urlencoded text: '+' is a space, %XX a byte
/// (a malformed escape is kept as it stands).
std::string url_decode(std::string_view text);

/// "a=1&b=2" (a query string or a form body) as a map; a repeated name keeps its last value.
std::map<std::string, std::string> parse_form(std::string_view text);

}  // namespace unsubrelay
