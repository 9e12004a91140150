// upstream_result.hpp: what an SMTP transaction means for each recipient, pure.
//
// Postfix's rules: a 2xx after the dot is "sent"; a 4xx anywhere, a lost
// connection or a timeout is "deferred" (retried); a 5xx to MAIL, to that
// RCPT, to DATA or after the dot is "bounced".
#pragma once

#include <string>
#include <vector>

#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/smtp/client.hpp"

namespace unsubrelay::delivery {

std::vector<RecipientResult> results_of(const smtp::Transaction& tx, std::size_t recipients, const std::string& relay,
                                        bool ses);

std::vector<RecipientResult> all_deferred(std::size_t recipients, const std::string& reason, const std::string& relay);

}  // namespace unsubrelay::delivery
