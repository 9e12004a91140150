// codec.hpp: transfer encodings (RFC 2045 §6.7, §6.8) with CRLF-only output.
//
// Our own encoders, because mimetic 0.9.8's write bare LF and, after the
// first 8-bit byte, hex-encode every space and line break (docs/mime.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace unsubrelay::mime {

/// Decodes quoted-printable: =XX, soft line breaks (also "=" followed by
/// trailing white space), trailing white space on lines removed. Malformed
/// "=" sequences are kept as they are, as RFC 2045 §6.7 suggests.
std::string qp_decode(std::string_view encoded);

/// Encodes text (CRLF line breaks) as quoted-printable, lines at most 76
/// characters, starting at column 0. With soft_break_at_end, a soft line
/// break closes the output so another encoded piece can follow on a new line.
void qp_encode(std::string_view text, std::string& out, bool soft_break_at_end);

/// Decodes base64, ignoring line breaks and white space; nullopt on any
/// other character or bad padding (the part is then left untouched).
std::optional<std::string> base64_decode(std::string_view encoded);

/// Encodes base64 in lines of 76 characters, each ended by CRLF.
void base64_encode(std::string_view bytes, std::string& out);

/// Whether a text part with an unknown Content-Transfer-Encoding ("7-bit",
/// "plain", "text/html", ...) can be read as 8bit, as mail readers read it:
/// the name is not that of an encoding they would undo or could not show
/// (uuencode, yEnc, base64 or quoted-printable misspelled, compression) and
/// the bytes are plain lines (no NUL, no lone CR, at most 998 bytes each).
bool readable_as_8bit(std::string_view encoding, std::string_view body);

/// &, <, >, " and ' as entities: safe in HTML text and in quoted attributes.
std::string html_escape(std::string_view text);

}  // namespace unsubrelay::mime
