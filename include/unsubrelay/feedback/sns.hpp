// sns.hpp: Amazon SNS HTTP(S) deliveries: the JSON envelope, the string AWS
// signs, signature verification, and the certificate URL allow-list.
//
// The string to sign (AWS SNS developer guide, "Verifying the signatures of
// Amazon SNS messages") is "Name\nvalue\n" for each of these fields, in this
// order, and nothing else:
//   Notification:                        Message, MessageId, Subject (only if
//                                        present), Timestamp, TopicArn, Type
//   SubscriptionConfirmation and
//   UnsubscribeConfirmation:             Message, MessageId, SubscribeURL,
//                                        Timestamp, Token, TopicArn, Type
// SignatureVersion 1 is RSA PKCS#1 v1.5 over SHA-1, 2 over SHA-256; the key is
// the one in the PEM certificate at SigningCertURL. Pure code: fetching the
// certificate is https_fetch.hpp's job.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unsubrelay::feedback {

enum class SnsType { notification, subscription_confirmation, unsubscribe_confirmation, other };

struct SnsMessage {
  SnsType type = SnsType::other;
  std::string type_text;        // Type as sent
  std::string message_id;       // MessageId
  std::string token;            // Token (confirmations)
  std::string topic_arn;        // TopicArn
  std::string subject;          // Subject
  bool has_subject = false;     // Subject present (a null Subject counts as absent)
  std::string message;          // Message: for SES, the notification JSON (ses.hpp)
  std::string timestamp;        // Timestamp
  std::string signature_version;  // "1" or "2"
  std::string signature;        // base64
  std::string signing_cert_url; // SigningCertURL
  std::string subscribe_url;    // SubscribeURL (confirmations)
  std::string unsubscribe_url;  // UnsubscribeURL (notifications)
};

struct SnsLimits {
  std::size_t max_body_bytes = 256 * 1024;  // SNS messages are at most 256 KB
};

struct SnsParse {
  std::optional<SnsMessage> message;
  std::string error;  // why not, for the log and the 400/403 answer: "not JSON", "missing Type", ...
};

/// Parses an SNS POST body. Every field must be a JSON string when present
/// (Subject may be null); Type, MessageId, TopicArn, Timestamp,
/// SignatureVersion, Signature and SigningCertURL are required, and so are
/// Message for every type, Token and SubscribeURL for confirmations.
SnsParse parse_sns(std::string_view body, const SnsLimits& limits = {});

/// The string AWS signed, per the field lists above; nullopt for an unknown Type.
std::optional<std::string> string_to_sign(const SnsMessage& message);

enum class SignatureError {
  none,
  unsupported_version,       // SignatureVersion other than "1" or "2"
  unknown_type,              // no string to sign for this Type
  bad_signature_encoding,    // Signature is not base64
  bad_certificate,           // not a PEM X.509 certificate with an RSA key
  certificate_not_yet_valid, // now < notBefore
  certificate_expired,       // now > notAfter
  bad_signature,             // the signature does not verify
};
const char* describe(SignatureError e);

/// What verify_signature() refuses without the certificate: the
/// SignatureVersion, the Type, the Signature's base64. none when they pass.
SignatureError check_signature_form(const SnsMessage& message);

/// Verifies message's signature with the certificate (PEM) at its
/// SigningCertURL; now is unix seconds, for the certificate's validity period.
SignatureError verify_signature(const SnsMessage& message, std::string_view certificate_pem, std::int64_t now);

/// SNS's Timestamp, ISO 8601 in UTC as SNS writes it
/// ("2012-04-26T20:45:04.751Z", the fraction optional), in unix seconds;
/// nullopt for anything else.
std::optional<std::int64_t> parse_sns_timestamp(std::string_view text);

/// An https URL split as the fetcher connects to it.
struct HttpsUrl {
  std::string host;    // lower case; an IPv6 literal without its brackets
  std::string port;    // "443" when not given
  std::string target;  // path and query, at least "/"
};

/// Parses "https://host[:port][/path[?query]]". nullopt for any other scheme
/// (the scheme must be lower-case "https"), userinfo ('@' before the path),
/// an empty host, a bad port, a fragment, a backslash, white space or control
/// bytes, or a path with "." or ".." segments (also percent-encoded).
std::optional<HttpsUrl> parse_https_url(std::string_view url);

/// The allow-list rule for SigningCertURL and SubscribeURL (config
/// feedback.ses_sns.cert_url_prefixes): url parses (above) and, for some
/// prefix that parses too, has the same host (ignoring case) and port, and its
/// target starts with the prefix's path. The host is compared whole, never as
/// a string prefix: a prefix written without a trailing slash,
/// "https://sns.us-east-1.amazonaws.com", does not let
/// "https://sns.us-east-1.amazonaws.com.evil.example/" through. Within the
/// path the match is a plain string prefix, so
/// "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-" allows
/// exactly AWS's certificate names.
bool url_allowed(std::string_view url, const std::vector<std::string>& prefixes);

}  // namespace unsubrelay::feedback
