// preferences.hpp: the preference page (unsubscribe.topics), as pure functions.
//
// GET /u/TOKEN with topics configured shows every topic with its current
// state as a switch, and "unsubscribe from all". It is a plain HTML form: it
// works without JavaScript, every control has a label, the switches and
// buttons are at least 44 px tall, and the keyboard reaches all of them in
// order. Posting the form sends the whole wanted state; changes() turns it
// into the changes to record, one event each. No I/O here: http/service.cpp
// reads the state from the store and applies the changes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unsubrelay/config/config.hpp"

namespace unsubrelay::http {

struct TopicState {
  std::string id;
  std::string name;
  bool subscribed = true;
};

struct PreferenceView {
  std::string masked_address;  // never the address itself
  std::string action;          // the form's target: /u/TOKEN
  std::vector<TopicState> topics;
  bool unsubscribed_from_all = false;
  std::string notice;  // after a post: what was saved ("" on GET)
};

/// The page's content (goes into the template's {{content}}).
std::string preference_content(const PreferenceView& view);

/// What a posted preference form asks for.
struct PreferenceForm {
  bool unsubscribe_all = false;      // the "unsubscribe from all" button
  bool resubscribe_all = false;      // the "resubscribe" button shown after that
  std::vector<std::string> wanted;   // the topic ids whose switch is on (save)
};

/// Parses an application/x-www-form-urlencoded body; nullopt when it is not a
/// preference form (then it is the Part 1 confirm form or one-click).
std::optional<PreferenceForm> parse_preference_form(std::string_view body);

/// One change to record.
struct TopicChange {
  enum class Kind { leave_topic, join_topic, leave_all, join_all } kind = Kind::leave_topic;
  std::string topic;  // for leave_topic / join_topic
};

/// The changes that take the current state to the one the form asks for, in
/// the order to apply them. Unknown topic ids in the form are ignored.
std::vector<TopicChange> changes(const std::vector<TopicState>& current, bool unsubscribed_from_all,
                                 const PreferenceForm& form);

}  // namespace unsubrelay::http
