// ci_require.hpp: what a test does when something it needs is not on this
// machine (the shared corpus, a test PostgreSQL). Under CI=true, which CI
// sets, it fails: a suite that quietly skips has not tested. Elsewhere it is
// skipped and says why (ctest lists it as skipped, never as passed).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string_view>

namespace unsubrelay::test_env {

inline bool on_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string_view(ci) == "true";
}

}  // namespace unsubrelay::test_env

/// Use at the top of a test body or SetUp(): returns from it.
#define UNSUBRELAY_REQUIRE(condition, why)                                                  \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      if (::unsubrelay::test_env::on_ci()) FAIL() << why << " (CI=true: required)"; \
      GTEST_SKIP() << why;                                                                  \
    }                                                                                       \
  } while (false)
