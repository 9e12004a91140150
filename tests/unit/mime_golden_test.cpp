// mime_golden_test.cpp: golden files for the rewriter, as Postfix's
// cleanup_milter.inN / .refN: each tests/data/golden/NAME.eml is planned and
// rendered with fixed recipient values and must give NAME.ref byte for byte.
// UNSUBRELAY_UPDATE_GOLDEN=1 rewrites the .ref files (review the diff!).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/mime/scanner.hpp"

using namespace unsubrelay::mime;

namespace {

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(Golden, EveryInputRendersToItsReference) {
  const std::filesystem::path dir = std::string(UNSUBRELAY_TEST_DATA) + "/golden";
  const bool update = std::getenv("UNSUBRELAY_UPDATE_GOLDEN") != nullptr;
  PlanOptions options;
  options.mailto = true;
  const RecipientValues values{"https://unsub.example.com/u/GOLDENTOKEN", "u+GOLDENTOKEN@unsub.example.com", "UID1"};
  std::size_t cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".eml") continue;
    ++cases;
    const auto input = slurp(entry.path());
    const auto copy = build_plan(input, options, "LAUNCH").render(values);
    auto ref_path = entry.path();
    ref_path.replace_extension(".ref");
    if (update) {
      std::ofstream(ref_path, std::ios::binary) << copy;
      continue;
    }
    ASSERT_TRUE(std::filesystem::exists(ref_path)) << ref_path;
    EXPECT_EQ(copy, slurp(ref_path)) << entry.path().filename();
  }
  EXPECT_GE(cases, 7u);
}

// Issue 11: whatever the message, the footer's link is inside the top-level
// multipart (before its closing delimiter), in a text part of the copy.
TEST(Golden, FooterNeverLandsInTheEpilogue) {
  const std::filesystem::path dir = std::string(UNSUBRELAY_TEST_DATA) + "/golden";
  const std::string url = "https://unsub.example.com/u/GOLDENTOKEN";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".eml" || !entry.path().filename().string().starts_with("footer-")) continue;
    const auto copy = build_plan(slurp(entry.path()), PlanOptions{}, "L").render({url, "", "U"});
    const auto scanned = scan(copy);
    ASSERT_TRUE(scanned.root.is_multipart()) << entry.path().filename();
    ASSERT_TRUE(scanned.root.closed) << entry.path().filename();
    const auto closing = copy.rfind("--" + scanned.root.boundary + "--");
    const auto link = copy.find(url, copy.find("\r\n\r\n"));  // in the body, not List-Unsubscribe
    ASSERT_NE(link, std::string::npos) << entry.path().filename();
    EXPECT_LT(link, closing) << entry.path().filename();
    bool in_text_part = false;
    for (const auto& part : scanned.root.children) {
      in_text_part |= part.is_text() && !part.attachment && part.body_begin <= link && link < part.end;
      for (const auto& inner : part.children) {
        in_text_part |= inner.is_text() && !inner.attachment && inner.body_begin <= link && link < inner.end;
      }
    }
    EXPECT_TRUE(in_text_part) << entry.path().filename();
  }
}
