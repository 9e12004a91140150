// certificate.cpp: the expiry of served TLS certificates (OpenSSL's PEM reader).
#include "unsubrelay/common/certificate.hpp"

#include <cstdio>
#include <ctime>
#include <memory>

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace unsubrelay::common {

namespace {

/// A label value in the Prometheus text format: backslash, quote and newline escaped.
std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::optional<std::int64_t> certificate_not_after(const std::string& pem_path, std::string& error) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(pem_path.c_str(), "rb"), &std::fclose);
  if (!file) {
    error = fmt::format("{}: cannot open", pem_path);
    return std::nullopt;
  }
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(file.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) {
    error = fmt::format("{}: no PEM certificate", pem_path);
    return std::nullopt;
  }
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    error = fmt::format("{}: unreadable notAfter", pem_path);
    return std::nullopt;
  }
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string certificate_expiry_metric(const std::vector<ServedCertificate>& certificates) {
  if (certificates.empty()) return {};
  std::string m =
      "# HELP unsubrelay_tls_certificate_expiry_timestamp_seconds notAfter of each served TLS certificate, "
      "as in force (loaded at start or by the last reload).\n# TYPE unsubrelay_tls_certificate_expiry_timestamp_seconds gauge\n";
  for (const auto& c : certificates) {
    m += fmt::format("unsubrelay_tls_certificate_expiry_timestamp_seconds{{listener=\"{}\",path=\"{}\"}} {}\n",
                     c.listener, label_value(c.path), c.not_after);
  }
  return m;
}

void CertificateExpiry::replace(const std::string& listener, const std::vector<ServedCertificate>& fresh) {
  std::lock_guard lock(mutex_);
  std::erase_if(served_, [&](const ServedCertificate& c) { return c.listener == listener; });
  for (const auto& c : fresh) {
    if (c.listener == listener) served_.push_back(c);
  }
}

std::string CertificateExpiry::metric() const {
  std::lock_guard lock(mutex_);
  return certificate_expiry_metric(served_);
}

}  // namespace unsubrelay::common
