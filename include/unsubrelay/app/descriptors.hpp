// descriptors.hpp: how the open-files limit is shared, so HTTP never starves SMTP.
//
// Every SMTP session, HTTP client, upstream connection and open queue file is
// a descriptor. Out of them, accept() fails with EMFILE for every listener
// at once: a flood of idle HTTP clients used to lock SMTP out. The rule
// (docs/configuration.md, "Open files"):
//   reserve = 128 + upstream.max_connections   (spool, store, logs, listeners, upstream)
//   smtp    = 2 × smtp.max_connections          (a socket, and a queue file while in DATA)
//   http    = min(http.max_connections, limit − reserve − smtp), at least 16
// HTTP is capped at that figure, so it can never take what SMTP and the
// spool need. At start the relay asks for reserve + smtp + http.max_connections.
#pragma once

#include <cstddef>
#include <cstdint>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::app {

struct DescriptorBudget {
  static constexpr std::uint64_t base_reserve = 128;
  static constexpr std::size_t min_http = 16;  // the service stays reachable even on a starved limit

  std::uint64_t open_files = 0;  // the soft RLIMIT_NOFILE in force
  std::uint64_t reserve = 0;
  std::uint64_t smtp = 0;
  std::uint64_t wanted = 0;  // reserve + smtp + http.max_connections
  std::size_t http_connections = 0;
  bool enough() const { return open_files >= wanted; }
};

/// The pure rule above, for a given limit.
DescriptorBudget plan_descriptors(std::uint64_t open_files, const config::Config& cfg);

/// Raises the soft limit toward what the configuration wants (as far as the hard
/// limit allows), logs a warning when it falls short, and returns the budget.
DescriptorBudget apply_descriptor_budget(const config::Config& cfg);

}  // namespace unsubrelay::app
