// report_parts.cpp: picking parts out of a scanned report, undoing encodings.
#include "report_parts.hpp"

#include <fmt/format.h>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/mime/codec.hpp"

namespace unsubrelay::feedback::detail {

ScannedReport scan_report(std::string_view message, const ReportLimits& limits, std::vector<std::string>& notes) {
  mime::ScanLimits scan_limits;
  scan_limits.max_depth = limits.max_depth;
  scan_limits.max_parts = limits.max_parts;
  scan_limits.max_header_bytes = limits.max_header_bytes;
  ScannedReport out{mime::scan(message, scan_limits), false};
  const auto& root = out.scan.root;
  // The scanner gives up on a top header over its limit: nothing below it can be trusted.
  out.unreadable = !out.scan.ok && root.opaque && root.body_begin == root.begin && !message.empty();
  constexpr std::size_t max_notes = 8;  // the scanner repeats itself on hostile input
  for (std::size_t i = 0; i < out.scan.notes.size() && i < max_notes; ++i) notes.push_back(out.scan.notes[i]);
  return out;
}

std::string content_type_param(const mime::Part& part, std::string_view name) {
  std::string found;
  mime::for_each_parameter(mime::field_value(part, "Content-Type"), [&](std::string_view key, std::string v) {
    if (!iequals(key, name)) return true;
    found = std::move(v);
    return false;
  });
  return found;
}

std::vector<const mime::Part*> parts_where(const mime::Part& root,
                                           const std::function<bool(const mime::Part&)>& pred) {
  std::vector<const mime::Part*> found;
  std::vector<const mime::Part*> stack{&root};  // the scanner bounded the tree; no recursion here
  while (!stack.empty()) {
    const auto* p = stack.back();
    stack.pop_back();
    if (pred(*p)) found.push_back(p);
    for (auto it = p->children.rbegin(); it != p->children.rend(); ++it) stack.push_back(&*it);
  }
  return found;
}

const mime::Part* returned_part(const mime::Part& root, const mime::Part* after) {
  const auto candidates = parts_where(root, [&](const mime::Part& p) {
    if (&p == after || p.opaque) return false;
    if (p.type == "message") return p.subtype == "rfc822" || p.subtype == "global" || p.subtype == "global-headers";
    return p.type == "text" && p.subtype == "rfc822-headers";
  });
  if (candidates.empty()) return nullptr;
  if (after != nullptr) {
    for (const auto* c : candidates) {
      if (c->begin >= after->end) return c;
    }
  }
  return candidates.front();
}

std::string transfer_encoding(const mime::Part& part) {
  if (part.encoding == "base64" || part.encoding == "quoted-printable") return part.encoding;
  return {};
}

std::string decode_transfer(std::string_view bytes, std::string_view encoding, std::size_t max_bytes,
                            std::vector<std::string>& notes) {
  std::string out;
  if (encoding == "base64") {
    // base64 is 4/3 of the data plus line breaks: decode no more input than
    // the limit needs, cut after a whole line (a line holds whole quads).
    auto input = bytes;
    if (input.size() > max_bytes * 2) {
      input = input.substr(0, max_bytes * 2);
      if (const auto nl = input.rfind('\n'); nl != std::string_view::npos) input = input.substr(0, nl + 1);
    }
    if (auto decoded = mime::base64_decode(input)) {
      out = std::move(*decoded);
    } else {
      notes.push_back("bad base64 in a report part; read as it is");
      out = std::string(bytes.substr(0, max_bytes));
    }
  } else if (encoding == "quoted-printable") {
    out = mime::qp_decode(bytes.substr(0, std::min(bytes.size(), max_bytes * 3)));
  } else {
    out = std::string(bytes.substr(0, max_bytes));
  }
  if (out.size() > max_bytes) {
    out.resize(max_bytes);
    notes.push_back(fmt::format("a report part over {} bytes was cut", max_bytes));
  }
  return out;
}

std::string decoded_body(std::string_view message, const mime::Part& part, const ReportLimits& limits,
                         std::vector<std::string>& notes) {
  const auto body = message.substr(part.body_begin, part.end > part.body_begin ? part.end - part.body_begin : 0);
  return decode_transfer(body, transfer_encoding(part), limits.max_status_bytes, notes);
}

}  // namespace unsubrelay::feedback::detail
