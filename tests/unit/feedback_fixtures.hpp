// Shared by the feedback parser tests: the fixtures under tests/data/feedback
// and the tokens signed into them.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace feedback_fixtures {

inline std::string read_fixture(const std::string& name) {
  std::ifstream in(std::string(UNSUBRELAY_TEST_DATA) + "/feedback/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The tokens the fixtures carry (Return-Path, List-Unsubscribe, body links).
inline const std::string t1 = "AQJmeAABAgMEBQYHCAkKCwwNDg8EMjIyMgQxMTExaSSBAAAAAADoNNL5XI7Fgu41PYpDr82x";
inline const std::string t2 = "AQJmeAECAwQFBgcICQoLDA0ODxAEMjIyMgQxMTExaSSBAAAAAAC6tqCCK6FIPjPLR7HIBSLW";
inline const std::string t3 = "AQJmeAIDBAUGBwgJCgsMDQ4PEBEEMzMzMwQ0NDQ0aSSBAAAAAAAwDOLP2f-YDpNEjtRwkARI";

}  // namespace feedback_fixtures
