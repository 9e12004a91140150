// directory_upstream.cpp: upstream.kind: directory, for dry runs and demos.
//
// Each recipient copy becomes DIR/QUEUEID.INDEX.eml, written atomically
// (temporary file, fsync, rename, directory fsync). The name is fixed by
// queue id and recipient index, so a redelivery after a crash overwrites the
// same file instead of making a duplicate. Return-Path: and Delivered-To:
// are added at the top, as a final delivery agent does (RFC 5321 §4.4).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "unsubrelay/delivery/upstream.hpp"
#include "unsubrelay/spool/durable_file.hpp"

namespace unsubrelay::delivery {

namespace {

class DirectoryUpstream final : public Upstream {
 public:
  explicit DirectoryUpstream(std::string dir, std::size_t concurrency)
      : dir_(std::move(dir)), concurrency_(concurrency) {}

  boost::asio::awaitable<std::vector<RecipientResult>> deliver(OutboundCopy copy) override {
    std::vector<RecipientResult> results;
    for (std::size_t i = 0; i < copy.recipients.size(); ++i) {
      const auto& rcpt = copy.recipients[i];
      std::string file = fmt::format("Return-Path: <{}>\r\nDelivered-To: {}\r\n", copy.sender, rcpt);
      file.append(copy.content);
      const auto name = fmt::format("{}.{}.eml", copy.queue_id, copy.copy_index + i);
      auto err = spool::make_directories(dir_);  // recreated if an operator removed it
      if (err.empty()) err = spool::write_file_atomically(dir_, name, file);
      if (err.empty()) {
        results.push_back({DeliveryStatus::sent, "250 2.0.0 written to " + name, "directory", {}});
      } else {
        // A full disk or a permission problem is temporary from the sender's view: retry.
        results.push_back({DeliveryStatus::deferred, "451 4.3.0 " + err, "directory", {}});
      }
    }
    co_return results;
  }

  std::size_t concurrency() const override { return concurrency_; }

 private:
  std::string dir_;
  std::size_t concurrency_;
};

}  // namespace

std::unique_ptr<Upstream> make_directory_upstream(const config::Upstream& settings, std::string* error) {
  (void)error;
  // A directory that cannot be made now is not fatal: mail is still accepted
  // and spooled, and each delivery attempt defers with the reason until fixed.
  if (auto err = spool::make_directories(settings.directory); !err.empty()) {
    spdlog::warn("upstream directory: {} (messages will be deferred until this is fixed)", err);
  }
  return std::make_unique<DirectoryUpstream>(settings.directory, settings.max_connections);
}

}  // namespace unsubrelay::delivery
