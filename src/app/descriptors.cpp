// descriptors.cpp: the open-files limit, raised and shared (app/descriptors.hpp).
#include "unsubrelay/app/descriptors.hpp"

#include <sys/resource.h>

#include <algorithm>

#include <spdlog/spdlog.h>

namespace unsubrelay::app {

DescriptorBudget plan_descriptors(std::uint64_t open_files, const config::Config& cfg) {
  DescriptorBudget b;
  b.open_files = open_files;
  // Each upstream connection, and the queue file of the message it delivers.
  b.reserve = DescriptorBudget::base_reserve + 2 * static_cast<std::uint64_t>(cfg.upstream.max_connections);
  b.smtp = 2 * static_cast<std::uint64_t>(cfg.smtp.limits.max_connections);
  b.wanted = b.reserve + b.smtp + cfg.http.max_connections;
  const std::uint64_t left = open_files > b.reserve + b.smtp ? open_files - b.reserve - b.smtp : 0;
  b.http_connections = static_cast<std::size_t>(
      std::max<std::uint64_t>(DescriptorBudget::min_http, std::min<std::uint64_t>(left, cfg.http.max_connections)));
  b.http_connections = std::min(b.http_connections, cfg.http.max_connections);
  return b;
}

DescriptorBudget apply_descriptor_budget(const config::Config& cfg) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return plan_descriptors(1024, cfg);
  const auto wanted = plan_descriptors(rl.rlim_cur, cfg).wanted;
  if (rl.rlim_cur < wanted) {
    rl.rlim_cur = std::min<rlim_t>(wanted, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  const auto budget = plan_descriptors(rl.rlim_cur, cfg);
  if (!budget.enough()) {
    spdlog::warn("open files limit is {}, below the {} that smtp.max_connections {}, http.max_connections {} and "
                 "the reserve need: HTTP gets {} connections; raise it (systemd: LimitNOFILE=, shell: ulimit -n)",
                 budget.open_files, budget.wanted, cfg.smtp.limits.max_connections, cfg.http.max_connections,
                 budget.http_connections);
  }
  return budget;
}

}  // namespace unsubrelay::app
