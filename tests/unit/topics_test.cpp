// topics_test.cpp: topics in tokens (version 2, version 1 still verifying),
// the unsubscribe.topics / page_url / page_origins / feedback_id keys, and
// what the render plan does with them.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/mime/render_plan.hpp"
#include "unsubrelay/token/token.hpp"

using namespace unsubrelay;

namespace {

token::KeySet legacy_keys() {
  std::vector<std::string> errors;
  auto keys = token::KeySet::load(std::string(UNSUBRELAY_TEST_DATA) + "/tokens-v1/keys.yaml", errors);
  EXPECT_TRUE(keys) << (errors.empty() ? "" : errors[0]);
  return *keys;
}

bool has_error(const config::LoadResult& r, const std::string& path, const std::string& text) {
  for (const auto& e : r.errors) {
    if (e.path == path && e.message.find(text) != std::string::npos) return true;
  }
  return false;
}

const char* topics_yaml =
    "unsubscribe:\n"
    "  topics:\n"
    "    - { id: newsletter, name: \"Weekly newsletter\" }\n"
    "    - { id: offers, name: \"Offers and promotions\" }\n";

}  // namespace

// Signed by main's code before topics existed (tests/data/tokens-v1: that
// relay's keys file, the token it printed with `unsubrelay token sign`).
TEST(TokenTopics, TokensIssuedBeforeTopicsKeepVerifying) {
  const auto keys = legacy_keys();
  const auto v = token::verify(
      "https://unsub.example.com/u/"
      "AQdsZWdhY3kxw5RR9c5OOhtLSNuu4-qBegkyMjIyMjIyMjIJMTExMTExMTExawxC5QAAAABmqEYvJ05CPnli6R-lG84i",
      keys, 1'800'000'000);
  ASSERT_TRUE(v.claims) << token::describe(v.error);
  EXPECT_EQ(token::uid_text(v.claims->uid), "w5RR9c5OOhtLSNuu4-qBeg");
  EXPECT_EQ(v.claims->email_id, "222222222");
  EXPECT_EQ(v.claims->launch_list_id, "111111111");
  EXPECT_EQ(v.claims->topic, "");
  // Re-signing those claims gives the very same token: no topic is still version 1.
  EXPECT_EQ(token::sign(*v.claims, keys.signing()),
            "AQdsZWdhY3kxw5RR9c5OOhtLSNuu4-qBegkyMjIyMjIyMjIJMTExMTExMTExawxC5QAAAABmqEYvJ05CPnli6R-lG84i");
  const auto bob = token::verify(
      "AQdsZWdhY3kxbco3CNilmbMIwkLcr3PX-QZuZXdzLTcETC00MmsMQuYAAAAAF08R7Qy9e7CogyIByB5EcA", keys, 1'800'000'000);
  ASSERT_TRUE(bob.claims);
  EXPECT_EQ(bob.claims->email_id, "news-7");
  EXPECT_EQ(bob.claims->launch_list_id, "L-42");
}

TEST(TokenTopics, VersionTwoCarriesTheTopic) {
  const auto keys = legacy_keys();
  token::Claims c;
  c.uid = *token::parse_uid("w5RR9c5OOhtLSNuu4-qBeg");
  c.email_id = "222222222";
  c.launch_list_id = "111111111";
  c.topic = "offers";
  c.issued = 1'800'000'000;
  const auto t = token::sign(c, keys.signing());
  EXPECT_EQ(token::base64url_decode(t)->front(), '\x02');
  const auto v = token::verify(t, keys, 1'800'000'001);
  ASSERT_TRUE(v.claims) << token::describe(v.error);
  EXPECT_EQ(v.claims->topic, "offers");
  EXPECT_EQ(v.claims->email_id, "222222222");
  // Every flipped bit and every truncation is refused, as for version 1.
  const auto raw = *token::base64url_decode(t);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = raw;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_FALSE(token::verify(token::base64url_encode(bad), keys, 0).claims) << i << " " << bit;
    }
  }
  for (std::size_t len = 0; len < t.size(); ++len) EXPECT_FALSE(token::verify(t.substr(0, len), keys, 0).claims);
  // A version 3 is not something this relay knows.
  auto future = raw;
  future[0] = 3;
  EXPECT_EQ(token::verify(token::base64url_encode(future), keys, 0).error, token::TokenError::wrong_version);
}

TEST(ConfigTopics, ReadsTopicsPageAndFeedbackId) {
  const auto r = config::load_text(std::string(topics_yaml) +
                                   "  topic_header: X-Programme\n"
                                   "  suppression: topic\n"
                                   "  page_url: https://www.example.com/unsubscribe.html\n"
                                   "  page_origins: [\"https://www.example.com\", \"http://localhost:8000\"]\n"
                                   "  feedback_id: \"{email_id}:{launch_list_id}:{topic}:acme\"\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].path << ": " << r.errors[0].message;
  const auto& u = r.config.unsubscribe;
  ASSERT_EQ(u.topics.size(), 2u);
  EXPECT_EQ(u.topics[1].id, "offers");
  EXPECT_EQ(u.topics[1].name, "Offers and promotions");
  EXPECT_EQ(u.topic_header, "X-Programme");
  EXPECT_EQ(u.suppression, config::Suppression::topic);
  EXPECT_EQ(u.page_url, "https://www.example.com/unsubscribe.html");
  EXPECT_EQ(u.page_origins.size(), 2u);
  EXPECT_NE(u.find_topic("newsletter"), nullptr);
  EXPECT_EQ(u.find_topic("news"), nullptr);
}

TEST(ConfigTopics, RefusesWhatCannotWork) {
  auto r = config::load_text("unsubscribe:\n  suppression: topic\n  topic_header: X-Topic\n");
  EXPECT_TRUE(has_error(r, "unsubscribe.suppression", "needs unsubscribe.topics"));
  EXPECT_TRUE(has_error(r, "unsubscribe.topic_header", "needs unsubscribe.topics"));
  r = config::load_text(
      "unsubscribe:\n  topics:\n    - { id: \"a b\", name: x }\n    - { id: ok, name: \"\" }\n"
      "    - { id: ok, name: y }\n    - { id: z, name: y, colour: red }\n");
  EXPECT_TRUE(has_error(r, "unsubscribe.topics[0].id", "[A-Za-z0-9._-]"));
  EXPECT_TRUE(has_error(r, "unsubscribe.topics[1].name", "is required"));
  EXPECT_TRUE(has_error(r, "unsubscribe.topics[2].id", "listed twice"));
  EXPECT_TRUE(has_error(r, "unsubscribe.topics[3].colour", "unknown key"));
  r = config::load_text("unsubscribe:\n  topics: newsletter\n");
  EXPECT_TRUE(has_error(r, "unsubscribe.topics", "must be a list"));
  r = config::load_text(
      "unsubscribe:\n  page_url: ftp://x/y\n  page_origins: [\"*\", \"https://a.example/path\", \"https://b.example\"]\n");
  EXPECT_TRUE(has_error(r, "unsubscribe.page_url", "http:// or https://"));
  EXPECT_TRUE(has_error(r, "unsubscribe.page_origins[0]", "no wildcard"));
  EXPECT_TRUE(has_error(r, "unsubscribe.page_origins[1]", "no path"));
  EXPECT_EQ(r.errors.size(), 3u);
  for (const char* bad : {"\"{email_id}:{campaign}:acme\"", "\"{email_id}:{topic}\"", "\"a b:acme\"", "\"noSenderId:\"",
                          "\"a:b:c:d:acme\""}) {
    r = config::load_text(std::string("unsubscribe:\n  feedback_id: ") + bad + "\n");
    EXPECT_EQ(r.errors.size(), 1u) << bad;
    EXPECT_TRUE(has_error(r, "unsubscribe.feedback_id", "")) << bad;
  }
}

namespace {

mime::PlanOptions topic_options() {
  const auto r = config::load_text(std::string(topics_yaml) +
                                   "  feedback_id: \"{email_id}:{launch_list_id}:{topic}:acme\"\n");
  EXPECT_TRUE(r.ok());
  return mime::PlanOptions::from(r.config.unsubscribe);
}

std::string campaign(const std::string& topic_line) {
  return "From: news@example.com\r\nSubject: s\r\nX-Campaign-Id: 222\r\nX-Launch-List-Id: L:1\r\n" + topic_line +
         "Feedback-ID: sender-set:1\r\n\r\nLeave: *|UNSUBSCRIBE|*\r\n";
}

}  // namespace

TEST(PlanTopics, KnownTopicIsReadStrippedAndInFeedbackId) {
  const auto message = campaign("X-Topic: offers\r\n");
  const auto plan = mime::build_plan(message, topic_options(), "q1");
  EXPECT_EQ(plan.topic(), "offers");
  EXPECT_EQ(plan.unknown_topic(), "");
  mime::RecipientValues v{"https://u.example/u/T", "", "uid"};
  const auto out = plan.render(v);
  EXPECT_EQ(out.find("X-Topic"), std::string::npos);
  EXPECT_EQ(out.find("sender-set"), std::string::npos);  // the sender's own Feedback-ID is replaced
  // ':' in an id would shift Gmail's fields: it becomes '-'.
  EXPECT_NE(out.find("Feedback-ID: 222:L-1:offers:acme\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Leave: https://u.example/u/T\r\n"), std::string::npos);
}

TEST(PlanTopics, UnknownTopicMeansNoTopic) {
  const auto message = campaign("X-Topic: gardening\r\n");  // the plan points into it
  const auto plan = mime::build_plan(message, topic_options(), "q1");
  EXPECT_EQ(plan.topic(), "");
  EXPECT_EQ(plan.unknown_topic(), "gardening");
  const auto out = plan.render({"https://u.example/u/T", "", "uid"});
  EXPECT_EQ(out.find("X-Topic"), std::string::npos);
  EXPECT_NE(out.find("Feedback-ID: 222:L-1::acme\r\n"), std::string::npos) << out;
}

TEST(PlanTopics, WithoutTopicsTheHeaderIsLeftAlone) {
  const auto message = campaign("X-Topic: offers\r\n");
  const auto plan = mime::build_plan(message, mime::PlanOptions{}, "q1");
  EXPECT_EQ(plan.topic(), "");
  const auto out = plan.render({"https://u.example/u/T", "", "uid"});
  EXPECT_NE(out.find("X-Topic: offers\r\n"), std::string::npos);
  EXPECT_NE(out.find("Feedback-ID: sender-set:1\r\n"), std::string::npos);
}

TEST(PlanTopics, PageUrlMovesBodyLinksButNotTheHeader) {
  const auto options = topic_options();
  const std::string message =
      "From: n@example.com\r\nX-Campaign-Id: 9\r\nContent-Type: text/html\r\n\r\n"
      "<a href=\"*|UNSUBSCRIBE|*\">leave</a> {{unsubscribe_url}}\r\n";
  const auto plan = mime::build_plan(message, options, "q1");
  const auto out = plan.render({"https://u.example/u/T", "", "uid", "https://www.example.com/p.html?e=T"});
  EXPECT_NE(out.find("List-Unsubscribe: <https://u.example/u/T>"), std::string::npos);
  EXPECT_NE(out.find("<a href=\"https://www.example.com/p.html?e=T\">leave</a> https://www.example.com/p.html?e=T"),
            std::string::npos)
      << out;
  // The footer of a message without a placeholder links the page too.
  const std::string bare = "From: n@example.com\r\nX-Campaign-Id: 9\r\n\r\nHello\r\n";
  const auto footer = mime::build_plan(bare, options, "q2").render({"https://u.example/u/T", "", "", "https://p/?e=T"});
  EXPECT_NE(footer.find("unsubscribe: https://p/?e=T"), std::string::npos) << footer;
}
