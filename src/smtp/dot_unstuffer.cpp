// dot_unstuffer.cpp: DATA decoding with strict CRLF line endings.
#include "unsubrelay/smtp/dot_unstuffer.hpp"

namespace unsubrelay::smtp {

void DotUnstuffer::emit(std::string& out, std::string_view bytes) {
  size_ += bytes.size();
  if (size_ > limits_.max_message_bytes) {
    too_big_ = true;  // keep reading to the end of data, but store nothing more
    return;
  }
  out.append(bytes);
}

void DotUnstuffer::count_line_byte() {
  // max_line counts the CRLF; the line's text may be max_line - 2 bytes.
  if (++line_len_ + 2 > limits_.max_line) long_line_ = true;
}

std::size_t DotUnstuffer::feed(std::string_view input, std::string& out) {
  std::size_t i = 0;
  // A run of ordinary bytes is appended in one go; the loop only stops on CR, LF and dots.
  while (i < input.size() && state_ != State::done) {
    const char c = input[i];
    switch (state_) {
      case State::line_start:
        if (c == '.') {
          state_ = State::dot;
          ++i;
          continue;
        }
        state_ = State::in_line;
        continue;  // reprocess c as line content
      case State::dot:
        if (c == '\r') {
          state_ = State::dot_cr;
          ++i;
          continue;
        }
        // A stuffed dot: it is dropped, the rest of the line is content. A bare
        // LF here is the <CRLF>.<LF> smuggling form, flagged below in in_line.
        count_line_byte();
        state_ = State::in_line;
        continue;
      case State::dot_cr:
        if (c == '\n') {
          state_ = State::done;
          ++i;
          continue;
        }
        // ".<CR>x": a bare CR after a dot; the dot stays dropped, the CR is content.
        bare_newline_ = true;
        emit(out, "\r");
        count_line_byte();
        state_ = State::in_line;
        continue;
      case State::in_line: {
        std::size_t j = i;
        while (j < input.size() && input[j] != '\r' && input[j] != '\n') ++j;
        if (j > i) {
          const auto run = input.substr(i, j - i);
          if (run.find('\0') != std::string_view::npos) nul_byte_ = true;
          if ((line_len_ += run.size()) + 2 > limits_.max_line) long_line_ = true;
          emit(out, run);
          i = j;
          continue;
        }
        if (c == '\r') {
          state_ = State::after_cr;
        } else {
          // Bare LF: never a line end, so "<LF>.<CR><LF>" cannot end the data.
          bare_newline_ = true;
          emit(out, "\n");
          count_line_byte();
        }
        ++i;
        continue;
      }
      case State::after_cr:
        if (c == '\n') {
          emit(out, "\r\n");
          line_len_ = 0;
          state_ = State::line_start;
          ++i;
          continue;
        }
        bare_newline_ = true;  // bare CR
        emit(out, "\r");
        count_line_byte();
        state_ = State::in_line;
        continue;  // reprocess c
      case State::done:
        break;
    }
  }
  return i;
}

}  // namespace unsubrelay::smtp
