// feedback_hooks.hpp: what the queue manager's steps ask of the feedback loop
// (SPEC Part 2), kept out of the queue manager's files.
//
//   render_copy     envelope_sender(): b+TOKEN@return_path_domain for a campaign copy (VERP)
//   record_outcome  refusal(): an upstream 5.1.x / 5.2.1 refusal of a campaign copy is a
//                   hard bounce, any other 5xx is `blocked` (never suppresses)
//   expire_deferred expiry(): a campaign copy that expired after its retries is a soft bounce
//   settle          record(): the reports of the attempt, through the Recorder (disk pool);
//                   mark_after_optout(): copies handed upstream although an opt-out that
//                   applies to them was recorded first (sent_after_optout, must stay 0)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/feedback/addresses.hpp"
#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::delivery {

/// The campaign copy a result is about.
struct CampaignCopy {
  std::string queue_id;
  std::size_t index = 0;  // the recipient's index in the queue file
  std::string address;
  std::string uid;
  std::string launch_list_id;
  std::string email_id;
};

class FeedbackHooks {
 public:
  /// recorder may be null (no store): reports are then only logged.
  FeedbackHooks(const config::Feedback& settings, feedback::Recorder* recorder, config::Suppression mode);

  /// The envelope sender of a campaign copy whose links carry token: VERP
  /// when return_path_domain is set, else the message's own.
  std::string envelope_sender(const std::string& message_sender, const std::string& token) const;
  bool verp() const { return !addresses_.return_path_domain().empty(); }

  std::optional<store::Feedback> refusal(const CampaignCopy& copy, const RecipientResult& result, long long now) const;
  std::optional<store::Feedback> expiry(const CampaignCopy& copy, const std::string& last_reply, long long now) const;
  /// Records the attempt's reports; those the store could not take are logged (the copy's outcome stands).
  void record(const std::vector<store::Feedback>& reports, const std::string& queue_id);
  /// Sets after_optout on the delivered sends whose address had an applicable
  /// opt-out created before the copy was handed upstream (send.time); one store call.
  void mark_after_optout(std::vector<store::Send>& sends, const std::vector<std::string>& addresses,
                         const store::CopyKind& kind, long long now);

 private:
  feedback::Addresses addresses_;
  feedback::Recorder* recorder_;
  config::Suppression mode_;
};

}  // namespace unsubrelay::delivery
