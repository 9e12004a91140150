// json.hpp: JSON text that never throws on what clients sent.
//
// nlohmann::json::dump() throws on invalid UTF-8, and User-Agent headers, URL
// paths and e-mail ids can carry any bytes. fuzz_http found the summary
// endpoint failing that way; the webhook thread and `export` had the same flaw
// (an exception there ended the relay). Invalid bytes become U+FFFD instead.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace unsubrelay {

inline std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace unsubrelay
