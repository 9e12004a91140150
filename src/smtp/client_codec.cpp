// client_codec.cpp: reply parsing, dot-stuffing, EHLO keywords.
#include "unsubrelay/smtp/client_codec.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <charconv>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::smtp {

std::string ServerReply::text() const {
  std::string out = std::to_string(code);
  for (const auto& l : lines) {
    out += ' ';
    out += l;
  }
  return out;
}

ReplyReader::Status ReplyReader::push(std::string_view line) {
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' ||
      line[2] > '9' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    return Status::malformed;
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!current_.lines.empty() && code != current_.code) return Status::malformed;
  if (current_.lines.size() >= max_lines) return Status::malformed;
  current_.code = code;
  current_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  return line.size() > 3 && line[3] == '-' ? Status::more : Status::complete;
}

ServerReply ReplyReader::take() { return std::exchange(current_, ServerReply{}); }

bool needs_stuffing(std::string_view c) {
  if (c.empty()) return false;  // dot_stuff("") is ".\r\n" too
  if (c.front() == '.' || !c.ends_with("\r\n")) return true;
  const char* const begin = c.data();
  const char* const end = begin + c.size();
  std::size_t lf = 0, cr = 0;
  for (const char* q = begin; (q = static_cast<const char*>(std::memchr(q, '\n', end - q))) != nullptr; ++q) {
    if (q == begin || q[-1] != '\r' || (q + 1 < end && q[1] == '.')) return true;
    ++lf;
  }
  // Every LF has its CR: as many CRs as LFs means no bare CR either.
  for (const char* q = begin; (q = static_cast<const char*>(std::memchr(q, '\r', end - q))) != nullptr; ++q) ++cr;
  return cr != lf;
}

bool has_8bit(std::string_view content) {
  std::size_t i = 0;
  for (; i + 32 <= content.size(); i += 32) {  // four words per test
    std::uint64_t w[4];
    std::memcpy(w, content.data() + i, 32);
    if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ULL) return true;
  }
  for (; i + 8 <= content.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, content.data() + i, 8);
    if (word & 0x8080808080808080ULL) return true;
  }
  for (; i < content.size(); ++i) {
    if (static_cast<unsigned char>(content[i]) >= 0x80) return true;
  }
  return false;
}

std::string dot_stuff(std::string_view content) {
  // Whole runs between line ends are copied at once (memchr, memcpy): the
  // byte-at-a-time version was the relay's hottest function in the benchmark.
  std::string out;
  out.reserve(content.size() + content.size() / 64 + 8);
  const char* p = content.data();
  const char* const end = p + content.size();
  auto next = [end](const char* from, char c) {
    const void* hit = std::memchr(from, c, static_cast<std::size_t>(end - from));
    return hit ? static_cast<const char*>(hit) : end;
  };
  const char* next_cr = next(p, '\r');
  const char* next_lf = next(p, '\n');
  bool line_start = true;
  while (p < end) {
    if (line_start && *p == '.') out.push_back('.');
    if (next_cr < p) next_cr = next(p, '\r');
    if (next_lf < p) next_lf = next(p, '\n');
    const char* stop = std::min(next_cr, next_lf);
    out.append(p, stop);
    if (stop == end) {
      line_start = false;
      break;
    }
    // CRLF, bare CR, bare LF: each becomes one CRLF.
    p = stop + 1;
    if (*stop == '\r' && p < end && *p == '\n') ++p;
    out += "\r\n";
    line_start = true;
  }
  if (!line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

Extensions parse_ehlo(const ServerReply& reply) {
  Extensions e;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {  // line 0 is the server's name
    const auto& l = reply.lines[i];
    const auto word = to_upper(l.substr(0, l.find(' ')));
    const auto rest = l.find(' ') == std::string::npos ? std::string() : to_upper(l.substr(l.find(' ') + 1));
    if (word == "PIPELINING") e.pipelining = true;
    if (word == "STARTTLS") e.starttls = true;
    if (word == "8BITMIME") e.eightbitmime = true;
    if (word == "AUTH" || word == "AUTH=") {
      const auto padded = " " + rest + " ";
      e.auth_plain |= padded.find(" PLAIN ") != std::string::npos;
      e.auth_login |= padded.find(" LOGIN ") != std::string::npos;
    }
    if (word == "SIZE") {
      std::uint64_t v = 0;
      const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
      e.size = (ec == std::errc{} && end == rest.data() + rest.size()) ? v : 0;
    }
  }
  return e;
}

std::string ses_message_id(const ServerReply& reply) {
  if (reply.code != 250 || reply.lines.empty()) return {};
  const auto& l = reply.lines.back();
  if (!istarts_with(l, "Ok ")) return {};
  auto id = l.substr(3);
  id = id.substr(0, id.find(' '));
  for (char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    if (!ok) return {};
  }
  return id;
}

}  // namespace unsubrelay::smtp
