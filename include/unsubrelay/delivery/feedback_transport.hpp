// feedback_transport.hpp: the local transport for feedback mail (COORD.md
// design decision 3), as Postfix hands mail to its local delivery agent.
//
// The queue manager gives it each spooled copy addressed to
// b+TOKEN@return_path_domain (a DSN) or to a complaint address (an ARF
// report). It resolves the report (feedback/processor.hpp), records and
// applies it through the Recorder (store work on the disk pool) and, with
// forward_to_sender, passes the report unchanged to the launch's original
// envelope sender through the upstream, from the null sender <>: each report
// once (its de-duplication key, claimed in the store), at most
// forward_per_hour a sender. A report whose contact only an address names is
// believed only from a client (the queue file's C record) in
// trusted_networks; any other without a token of ours is unverified: kept
// bounded, applied to nobody, never forwarded (issue 22). When the
// store (or the forward) fails the copy is deferred: it stays in the spool
// and is tried again, and the de-duplication key makes the retry count once.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "unsubrelay/config/config.hpp"
#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/feedback/addresses.hpp"
#include "unsubrelay/feedback/recorder.hpp"
#include "unsubrelay/token/token.hpp"

namespace unsubrelay::delivery {

/// upstream: where forwarded reports go; recorder: the store's side.
std::unique_ptr<Upstream> make_feedback_transport(const config::Feedback& settings, const token::KeySet& keys,
                                                  feedback::Recorder& recorder, Upstream& upstream,
                                                  boost::asio::thread_pool& disk);

/// With tenants (SPEC Part 3): keys holds every tenant's keys, addresses every
/// tenant's return_path_domain, and a report goes to the recorder (the store)
/// of the tenant whose key verified its token (route(key id)); a report no
/// token proves goes to recorder, the tenant default's.
std::unique_ptr<Upstream> make_feedback_transport(
    const config::Feedback& settings, feedback::Addresses addresses, const token::KeySet& keys,
    feedback::Recorder& recorder, std::function<feedback::Recorder*(const std::string& key_id)> route,
    Upstream& upstream, boost::asio::thread_pool& disk);

}  // namespace unsubrelay::delivery
