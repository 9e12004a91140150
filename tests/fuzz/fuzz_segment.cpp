// fuzz_segment.cpp: the group-committed spool's segment scan
// (spool/segment_log.hpp) on any bytes, as a power cut or a bad disk leaves
// them. Properties: no crash; the scan stops within the bytes; the records it
// returns, encoded again, are exactly the bytes up to where it stopped (so a
// record is either read whole and intact or not at all); appending a valid
// record after a damaged tail never makes the scan read past the damage.
#include <cstdint>
#include <string>

#include "unsubrelay/spool/segment_log.hpp"

using namespace unsubrelay::spool;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto scan = scan_records(bytes);
  if (scan.valid_end > bytes.size()) __builtin_trap();
  if (scan.stopped.empty() != (scan.valid_end == bytes.size())) __builtin_trap();
  std::string again;
  for (const auto& r : scan.records) {
    if (r.offset != again.size()) __builtin_trap();
    again += encode_record(r.kind, r.payload);
  }
  if (again != bytes.substr(0, scan.valid_end)) __builtin_trap();
  if (!scan.stopped.empty()) {
    // A record written after a torn tail is not read: a restart starts a new segment for that reason.
    const auto longer = std::string(bytes) + encode_record(RecordKind::removed, "0123456789ABCDEF");
    if (scan_records(longer).records.size() < scan.records.size()) __builtin_trap();
  }
  return 0;
}
