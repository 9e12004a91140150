// dot_unstuffer.hpp: the DATA phase decoder, pure code over byte buffers.
//
// It removes dot-stuffing (RFC 5321 §4.5.2) and finds the end of data, which
// is only ever <CRLF>.<CRLF>. The SMTP smuggling attacks (CVE-2023-51764 and
// kin) rely on a server that takes <LF>.<LF>, <LF>.<CR><LF> or <CR><LF>.<LF>
// as the end of data; here a bare LF or a bare CR never ends a line, and a
// message that contains one is flagged so the session refuses it. A NUL
// byte is flagged too: an upstream that strips NULs would read
// <CRLF><NUL>.<CRLF> as the end of data (outbound smuggling).
//
// Like Beast's basic_parser::put(), feed() returns the bytes it consumed and
// appends decoded content to the caller's buffer, so memory use is bounded by
// the read buffer, whatever the client sends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace unsubrelay::smtp {

class DotUnstuffer {
 public:
  struct Limits {
    std::uint64_t max_message_bytes;
    std::size_t max_line;  // CRLF included (RFC 5321 §4.5.3.1.6: 1000)
  };

  explicit DotUnstuffer(Limits limits) : limits_(limits) {}

  /// Decodes input into out (appending). Returns the number of bytes consumed:
  /// less than input.size() only when the end of data was reached, and the
  /// rest belongs to the next command (pipelining).
  std::size_t feed(std::string_view input, std::string& out);

  bool done() const { return state_ == State::done; }
  bool bare_newline() const { return bare_newline_; }  // bare CR or LF seen
  bool nul_byte() const { return nul_byte_; }          // a NUL (0x00) seen
  bool too_big() const { return too_big_; }            // more than max_message_bytes
  bool long_line() const { return long_line_; }        // a line over max_line
  std::uint64_t size() const { return size_; }         // decoded bytes (all, even when too big)

 private:
  enum class State { line_start, in_line, after_cr, dot, dot_cr, done };
  void emit(std::string& out, std::string_view bytes);
  void count_line_byte();

  Limits limits_;
  State state_ = State::line_start;
  std::uint64_t size_ = 0;
  std::size_t line_len_ = 0;
  bool bare_newline_ = false;
  bool nul_byte_ = false;
  bool too_big_ = false;
  bool long_line_ = false;
};

}  // namespace unsubrelay::smtp
