// preferences_test.cpp: the preference page's HTML (labels, states, no
// address) and the changes a posted form asks for.
#include <gtest/gtest.h>

#include "unsubrelay/http/preferences.hpp"

using namespace unsubrelay::http;
using Kind = TopicChange::Kind;

namespace {

std::vector<TopicState> topics(bool news, bool offers) {
  return {{"newsletter", "Weekly <newsletter>", news}, {"offers", "Offers & promotions", offers}};
}

std::string text(const std::vector<TopicChange>& cs) {
  std::string out;
  for (const auto& c : cs) {
    out += c.kind == Kind::leave_topic ? "-" : c.kind == Kind::join_topic ? "+" : c.kind == Kind::leave_all ? "-all" : "+all";
    out += c.topic + " ";
  }
  return out;
}

}  // namespace

TEST(Preferences, EveryTopicHasALabelledSwitchWithItsState) {
  const auto html = preference_content({"a***@example.org", "/u/TOKEN", topics(true, false), false, ""});
  EXPECT_NE(html.find("<label class=\"topic\" for=\"topic-newsletter\"><span>Weekly &lt;newsletter&gt;</span>"
                      "<input type=\"checkbox\" role=\"switch\" id=\"topic-newsletter\" name=\"topic\" "
                      "value=\"newsletter\" checked></label>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("id=\"topic-offers\" name=\"topic\" value=\"offers\"></label>"), std::string::npos);
  EXPECT_NE(html.find("<form method=\"post\" action=\"/u/TOKEN\">"), std::string::npos);
  EXPECT_NE(html.find("value=\"unsubscribe-all\""), std::string::npos);
  EXPECT_NE(html.find("<strong>a***@example.org</strong>"), std::string::npos);
  EXPECT_NE(html.find("min-height: 44px"), std::string::npos);
  EXPECT_EQ(html.find("role=\"status\""), std::string::npos);  // no notice on GET
}

TEST(Preferences, UnsubscribedFromAllShowsEverythingOffAndOffersToComeBack) {
  const auto html = preference_content({"a***@example.org", "/u/T", topics(true, true), true, "Saved."});
  EXPECT_EQ(html.find(" checked"), std::string::npos);
  EXPECT_NE(html.find("value=\"resubscribe-all\""), std::string::npos);
  EXPECT_EQ(html.find("value=\"unsubscribe-all\""), std::string::npos);
  EXPECT_NE(html.find("<p class=\"notice\" role=\"status\">Saved.</p>"), std::string::npos);
}

TEST(Preferences, FormParsing) {
  auto f = parse_preference_form("form=preferences&topic=newsletter&topic=offers&action=save");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->wanted, (std::vector<std::string>{"newsletter", "offers"}));
  EXPECT_FALSE(f->unsubscribe_all);
  f = parse_preference_form("form=preferences&action=unsubscribe-all");
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->unsubscribe_all);
  EXPECT_FALSE(parse_preference_form("action=unsubscribe"));
  EXPECT_FALSE(parse_preference_form("List-Unsubscribe=One-Click"));
  EXPECT_FALSE(parse_preference_form(""));
}

TEST(Preferences, ChangesTakeTheStateToTheForm) {
  PreferenceForm save{false, false, {"newsletter"}};
  EXPECT_EQ(text(changes(topics(true, true), false, save)), "-offers ");
  EXPECT_EQ(text(changes(topics(false, false), false, save)), "+newsletter ");
  EXPECT_EQ(text(changes(topics(true, false), false, save)), "");  // nothing changed: nothing recorded
  // Off for everything while unsubscribed from all: already so.
  EXPECT_EQ(text(changes(topics(true, true), true, PreferenceForm{})), "");
  // Turning one on while unsubscribed from all: back in, and the others off.
  EXPECT_EQ(text(changes(topics(true, true), true, save)), "+all -offers ");
  EXPECT_EQ(text(changes(topics(true, true), false, {true, false, {}})), "-all ");
  EXPECT_EQ(text(changes(topics(true, true), true, {true, false, {}})), "");
  EXPECT_EQ(text(changes(topics(true, false), true, {false, true, {}})), "+all ");
  // Ids that are not configured topics are ignored.
  EXPECT_EQ(text(changes(topics(true, true), false, {false, false, {"newsletter", "offers", "gardening"}})), "");
}
