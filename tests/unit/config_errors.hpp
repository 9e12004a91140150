// config_errors.hpp: the configuration tests' check for one error at a place.
#pragma once

#include <string>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::config {

/// True when r has an error at path:line whose message contains text.
inline bool has_error(const LoadResult& r, const std::string& path, int line, const std::string& text) {
  for (const auto& e : r.errors) {
    if (e.path == path && e.line == line && e.message.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace unsubrelay::config
