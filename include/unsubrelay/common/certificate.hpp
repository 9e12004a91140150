// certificate.hpp: when the TLS certificates the relay serves expire, for
// /metrics (unsubrelay_tls_certificate_expiry_timestamp_seconds) and the
// certificate-expiry alert in docs/monitoring/.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace unsubrelay::common {

/// The notAfter time (unix seconds) of the first certificate in a PEM file:
/// the leaf of a chain file. nullopt, with `error` set, when unreadable.
std::optional<std::int64_t> certificate_not_after(const std::string& pem_path, std::string& error);

/// One served certificate: which listener serves it, from which file, until when.
struct ServedCertificate {
  std::string listener;  // "smtp", "http"
  std::string path;
  std::int64_t not_after = 0;
};

/// The Prometheus gauge for these certificates ("" when there are none).
std::string certificate_expiry_metric(const std::vector<ServedCertificate>& certificates);

/// The certificates in force, as /metrics reports them: read at start, and a
/// listener's entry replaced when SIGHUP put its new certificate in force.
/// Thread-safe (/metrics is answered on the HTTP handler threads).
class CertificateExpiry {
 public:
  explicit CertificateExpiry(std::vector<ServedCertificate> served) : served_(std::move(served)) {}
  /// Drops listener's entries and adds those of fresh that are listener's.
  void replace(const std::string& listener, const std::vector<ServedCertificate>& fresh);
  std::string metric() const;

 private:
  mutable std::mutex mutex_;
  std::vector<ServedCertificate> served_;
};

}  // namespace unsubrelay::common
