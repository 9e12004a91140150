// scanner.cpp: header fields, Content-Type parameters, multipart boundaries.
#include "unsubrelay/mime/scanner.hpp"

#include <utility>

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"

namespace unsubrelay::mime {

namespace {

struct Scanner {
  std::string_view msg;
  const ScanLimits& limits;
  ScanResult& result;
  std::size_t parts = 0;

  /// Next line [pos, end of line) and where the following line starts.
  std::pair<std::size_t, std::size_t> line_at(std::size_t pos, std::size_t limit) const {
    const auto nl = msg.find('\n', pos);
    if (nl == std::string_view::npos || nl >= limit) return {limit, limit};
    const std::size_t end = (nl > pos && msg[nl - 1] == '\r') ? nl - 1 : nl;
    return {end, nl + 1};
  }

  /// Parses the header block at [begin, limit); returns false when it is too big.
  bool header(Part& part, std::size_t begin, std::size_t limit) {
    std::size_t pos = begin;
    while (pos < limit) {
      const auto [end, next] = line_at(pos, limit);
      if (end == pos) {  // the empty line ends the header
        part.body_begin = next;
        return true;
      }
      if (next - begin > limits.max_header_bytes) {
        result.notes.push_back(fmt::format("header block over {} bytes", limits.max_header_bytes));
        return false;
      }
      const auto line = msg.substr(pos, end - pos);
      if (line.starts_with("From ")) {
        // An mbox envelope line ("From sender date") pasted into the header:
        // readers skip it (Python's email package notes a defect and goes on),
        // so the header goes on here too; the line is kept in the copy.
        result.notes.push_back("mbox \"From \" line inside the header skipped");
      } else if ((line[0] == ' ' || line[0] == '\t') && !part.fields.empty()) {
        auto& f = part.fields.back();  // a folded continuation line
        f.value += ' ';
        f.value += trim(line);
        f.end = next;
      } else if (const auto colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
        part.fields.push_back({pos, next, std::string(trim(line.substr(0, colon))),
                               std::string(trim(line.substr(colon + 1)))});
      } else {
        // Not a header line: many MUAs start the body here; so do we.
        result.notes.push_back("header line without a colon; the body starts there");
        part.body_begin = pos;
        return true;
      }
      pos = next;
    }
    part.body_begin = limit;  // a message with only a header
    return true;
  }

  /// Splits "type/subtype; a=b; c=\"d\"" into the part's fields.
  static void content_type(Part& part, std::string_view value) {
    const auto semi = value.find(';');
    const auto media = trim(value.substr(0, semi));
    const auto slash = media.find('/');
    if (slash != std::string_view::npos && slash > 0 && slash + 1 < media.size()) {
      part.type = to_lower(trim(media.substr(0, slash)));
      part.subtype = to_lower(trim(media.substr(slash + 1)));
    }
    for_each_parameter(value, [&part](std::string_view name, std::string v) {
      if (name == "boundary") part.boundary = std::move(v);
      if (name == "charset") part.charset = to_lower(v);
      return true;
    });
  }

  void classify(Part& part, bool digest_child) {
    if (digest_child) {
      part.type = "message";
      part.subtype = "rfc822";
    }
    // A field given twice counts once, the first time, as mail readers
    // (and Python's email package) read it: a later "Content-Type: text/plain"
    // must not turn a multipart into one text part whose end is past the
    // closing delimiter.
    bool type_seen = false, encoding_seen = false, disposition_seen = false;
    for (const auto& f : part.fields) {
      if (iequals(f.name, "Content-Type") && !std::exchange(type_seen, true)) content_type(part, f.value);
      if (iequals(f.name, "Content-Transfer-Encoding") && !std::exchange(encoding_seen, true)) {
        part.encoding = to_lower(trim(f.value));
      }
      if (iequals(f.name, "Content-Disposition") && !std::exchange(disposition_seen, true)) {
        part.attachment = istarts_with(trim(f.value), "attachment");
      }
    }
  }

  /// Scans one entity at [begin, end) and, for multiparts, its children.
  void entity(Part& part, std::size_t begin, std::size_t end, std::size_t depth, bool digest_child) {
    part.begin = begin;
    part.end = end;
    if (++parts > limits.max_parts) {
      part.opaque = true;
      result.notes.push_back(fmt::format("more than {} parts; the rest are left untouched", limits.max_parts));
      part.body_begin = begin;
      return;
    }
    if (!header(part, begin, end)) {
      part.opaque = true;
      part.body_begin = begin;
      if (depth == 0) result.ok = false;  // the top header cannot be edited safely
      return;
    }
    classify(part, digest_child);
    if (!part.is_multipart()) return;
    if (depth >= limits.max_depth) {
      part.opaque = true;
      result.notes.push_back(fmt::format("multipart nesting deeper than {}; inner parts left untouched", limits.max_depth));
      return;
    }
    if (part.boundary.empty() || part.boundary.size() > 200) {
      part.opaque = true;
      result.notes.push_back("multipart without a usable boundary; left untouched");
      return;
    }
    children(part, depth, part.subtype == "digest");
  }

  /// Finds the delimiter lines of part.boundary inside the part's body.
  void children(Part& part, std::size_t depth, bool digest) {
    const std::string delimiter = "--" + part.boundary;
    std::size_t pos = part.body_begin;
    std::size_t child_begin = std::string_view::npos;
    bool closed = false;
    while (pos < part.end) {
      const auto hit = msg.find(delimiter, pos);
      if (hit == std::string_view::npos || hit + delimiter.size() > part.end) break;
      pos = hit + delimiter.size();
      if (hit != part.body_begin && msg[hit - 1] != '\n') continue;  // not at a line start
      std::size_t after = hit + delimiter.size();
      const bool closing = msg.substr(after, 2) == "--";
      if (closing) after += 2;
      while (after < part.end && (msg[after] == ' ' || msg[after] == '\t')) ++after;
      if (after < part.end && msg[after] != '\r' && msg[after] != '\n') continue;  // "--boundaryX" is another boundary
      // RFC 2046 §5.1.1: the CRLF before the delimiter belongs to the delimiter.
      std::size_t content_end = hit;
      if (content_end > part.body_begin && msg[content_end - 1] == '\n') --content_end;
      if (content_end > part.body_begin && msg[content_end - 1] == '\r') --content_end;
      if (child_begin != std::string_view::npos) {
        Part child;
        entity(child, child_begin, std::max(child_begin, content_end), depth + 1, digest);
        part.children.push_back(std::move(child));
      }
      const auto [line_end, next] = line_at(hit, part.end);
      (void)line_end;
      child_begin = next;
      if (closing) {
        closed = part.closed = true;
        break;
      }
    }
    if (!closed) {
      if (child_begin != std::string_view::npos && child_begin < part.end) {
        Part child;  // the last part runs to the end, as MUAs read it
        entity(child, child_begin, part.end, depth + 1, digest);
        part.children.push_back(std::move(child));
      }
      result.notes.push_back(fmt::format("missing closing boundary \"{}\"", printable(part.boundary, 70)));
    }
    if (part.children.empty()) part.opaque = true;
  }
};

}  // namespace

ScanResult scan(std::string_view message, const ScanLimits& limits) {
  ScanResult result;
  result.ok = true;
  Scanner s{message, limits, result};
  s.entity(result.root, 0, message.size(), 0, false);
  return result;
}

bool has_header_field(std::string_view message, std::string_view name) {
  for (std::size_t pos = 0; pos < message.size();) {
    const auto nl = message.find('\n', pos);
    const auto line = message.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (line.empty() || line == "\r") return false;  // the end of the header
    if (line.size() > name.size() && line[name.size()] == ':' && iequals(line.substr(0, name.size()), name)) {
      return true;
    }
    if (nl == std::string_view::npos) return false;
    pos = nl + 1;
  }
  return false;
}

std::optional<std::string> without_field(std::string_view message, std::string_view name) {
  const auto scanned = scan(message);
  if (!scanned.ok) return std::nullopt;
  return without_field(message, scanned.root, name);
}

std::optional<std::string> without_field(std::string_view message, const Part& root, std::string_view name) {
  std::string out;
  std::size_t cursor = 0;
  bool found = false;
  for (const auto& f : root.fields) {
    if (!iequals(f.name, name)) continue;
    out.append(message.substr(cursor, f.begin - cursor));
    cursor = f.end;
    found = true;
  }
  if (!found) return std::nullopt;
  out.append(message.substr(cursor));
  return out;
}

std::string field_value(const Part& part, std::string_view name) {
  for (auto it = part.fields.rbegin(); it != part.fields.rend(); ++it) {
    if (iequals(it->name, name)) return it->value;
  }
  return {};
}

void for_each_parameter(std::string_view value,
                        const std::function<bool(std::string_view name, std::string value)>& visit) {
  const auto semi = value.find(';');
  std::string_view rest = semi == std::string_view::npos ? std::string_view() : value.substr(semi + 1);
  while (!rest.empty()) {
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos) return;
    const auto name = to_lower(trim(rest.substr(0, eq)));
    rest = trim(rest.substr(eq + 1));
    std::string v;
    if (!rest.empty() && rest.front() == '"') {
      std::size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        v.push_back(rest[i]);
      }
      rest = i < rest.size() ? rest.substr(i + 1) : std::string_view();
    } else {
      v = std::string(trim(rest.substr(0, rest.find(';'))));
    }
    const auto next = rest.find(';');
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    if (!visit(name, std::move(v))) return;
  }
}

}  // namespace unsubrelay::mime
