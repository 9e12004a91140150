// cpu_budget.hpp: "this work finished in linear time", asserted on the
// thread's CPU time rather than the wall clock, so a loaded machine (two
// cores, the whole suite beside it) does not fail it. Linear work on the
// hostile inputs of these tests takes well under a second under
// AddressSanitizer; quadratic work on the same sizes takes minutes.
#pragma once

#include <gtest/gtest.h>

#include <ctime>
#include <string>

namespace unsubrelay::test_env {

inline double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

/// Fails the test (EXPECT) if the scope used more than `seconds` of CPU.
class CpuBudget {
 public:
  explicit CpuBudget(double seconds, std::string what = "the test") : seconds_(seconds), what_(std::move(what)) {}
  CpuBudget(const CpuBudget&) = delete;
  CpuBudget& operator=(const CpuBudget&) = delete;
  ~CpuBudget() {
    const double used = thread_cpu_seconds() - start_;
    EXPECT_LT(used, seconds_) << what_ << " used " << used << " s of CPU, over its budget of " << seconds_
                              << " s: a path that is not linear in its input?";
  }

 private:
  double seconds_;
  std::string what_;
  double start_ = thread_cpu_seconds();
};

}  // namespace unsubrelay::test_env
