// json_response.hpp: the JSON answers the API routes share (private to src/http).
#pragma once

#include <nlohmann/json.hpp>

#include "unsubrelay/common/json.hpp"
#include "unsubrelay/http/service.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::http {

/// A JSON body, never cached: every API answer is one request's data.
inline Response json_response(int status, const nlohmann::json& body) {
  return {status, "application/json", json_text(body), {{"Cache-Control", "no-store"}}};
}

/// 503 with the store's error and Retry-After: the client tries again.
inline Response store_unavailable(const store::Store& store) {
  auto out = json_response(503, {{"error", "store unavailable: " + store.last_error()}});
  out.headers.emplace_back("Retry-After", "30");
  return out;
}

}  // namespace unsubrelay::http
