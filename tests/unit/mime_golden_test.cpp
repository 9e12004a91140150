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

// Whether a mail reader showing part shows url: one alternative (which one
// depends on the reader, so each text/plain, text/html or multipart one), the
// first part of a multipart/related, every part of a multipart/mixed.
bool reader_shows(const Part& part, const std::string& copy, const std::string& url) {
  if (part.attachment || part.type == "message") return false;
  if (!part.is_multipart()) {
    return part.is_text() && copy.substr(part.body_begin, part.end - part.body_begin).find(url) != std::string::npos;
  }
  if (part.subtype == "related") return !part.children.empty() && reader_shows(part.children.front(), copy, url);
  bool any = false, all = true;
  for (const auto& c : part.children) {
    const bool pickable =
        !c.attachment && (c.is_multipart() || (c.is_text() && (c.subtype == "plain" || c.subtype == "html")));
    const bool shows = reader_shows(c, copy, url);
    any |= shows;
    if (pickable) all &= shows;
  }
  return part.subtype == "alternative" ? any && all : any;
}

// How many inputs there are: a file lost (or not picked up) fails the tests.
constexpr std::size_t golden_inputs = 12;
constexpr std::size_t footer_inputs = 11;  // footer-*.eml

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
  EXPECT_EQ(cases, golden_inputs);
}

// Issue 11: whatever the message, the footer's link is inside the top-level
// multipart (before its closing delimiter), in a text part of the copy.
// Issue 22: and a reader shows it: the top level of every footer-* copy is a
// multipart/mixed (the footer part never goes into an alternative or a
// related body), or a text part of every alternative carries it.
TEST(Golden, FooterNeverLandsInTheEpilogue) {
  const std::filesystem::path dir = std::string(UNSUBRELAY_TEST_DATA) + "/golden";
  const std::string url = "https://unsub.example.com/u/GOLDENTOKEN";
  std::size_t cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".eml" || !entry.path().filename().string().starts_with("footer-")) continue;
    ++cases;
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
    EXPECT_TRUE(reader_shows(scanned.root, copy, url)) << entry.path().filename();
  }
  EXPECT_EQ(cases, footer_inputs);
}
