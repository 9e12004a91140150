// outcome_event.hpp: a campaign copy's outcome as an event (issue 26,
// docs/events.md), built where the delivery attempt knows it and written with
// the copy's send record (store::Send::event): no store round trip of its own.
//
//   record_outcome   copy_event(): delivered (the reply, SES's message id),
//                    deferred (the reason; the store keeps only the first per copy),
//                    bounced hard (5.1.x, 5.2.1) or blocked (any other refusal), source smtp,
//                    suppressed (the suppression's reason and scope: nothing was sent)
//   expire_deferred  expired_event(): a soft bounce, 4.4.7, source smtp
#pragma once

#include <string>

#include "unsubrelay/delivery/feedback_hooks.hpp"
#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/store/store.hpp"

namespace unsubrelay::delivery {

/// suppressed: the store's reason when the copy was suppressed ("" when it was
/// not); scope: unsubscribe.suppression's word (global | campaign).
store::Event copy_event(const CampaignCopy& copy, const std::string& topic, const RecipientResult& result,
                        const std::string& suppressed, const std::string& scope, long long now);

store::Event expired_event(const CampaignCopy& copy, const std::string& topic, const std::string& last_reply,
                           long long now);

}  // namespace unsubrelay::delivery
