// SNS envelopes, the string AWS signs, signature versions 1 and 2 with a
// certificate made here, the URL allow-list, SES notification JSON, and the
// combined check with a fake fetcher (no socket: https_fetch has its own test).
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <ctime>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "feedback_fixtures.hpp"
#include "unsubrelay/feedback/certificate_cache.hpp"
#include "unsubrelay/feedback/fetch_pool.hpp"
#include "unsubrelay/feedback/ses.hpp"
#include "unsubrelay/feedback/sns.hpp"
#include "unsubrelay/feedback/sns_check.hpp"
#include "unsubrelay/mime/codec.hpp"

namespace fb = unsubrelay::feedback;

namespace {

using feedback_fixtures::read_fixture;

constexpr std::int64_t now = 1800000000;  // 2027-01-15

/// A self-signed RSA certificate valid over [not_before, not_after] and its key.
struct Signer {
  std::shared_ptr<EVP_PKEY> key;
  std::string pem;

  Signer(std::int64_t not_before, std::int64_t not_after) {
    key.reset(EVP_RSA_gen(2048), EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after));
    X509_set_pubkey(cert.get(), key.get());
    auto* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("sns.amazonaws.com"),
                               -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509_sign(cert.get(), key.get(), EVP_sha256());
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_X509(bio.get(), cert.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    pem.assign(data, static_cast<std::size_t>(n));
  }

  /// Signs m's string to sign with SHA-1 (version "1") or SHA-256 ("2").
  void sign(fb::SnsMessage& m) const {
    const auto text = fb::string_to_sign(m).value();
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestSignInit(ctx.get(), nullptr, m.signature_version == "1" ? EVP_sha1() : EVP_sha256(), nullptr, key.get());
    std::size_t len = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(text.data());
    EVP_DigestSign(ctx.get(), nullptr, &len, data, text.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data, text.size());
    sig.resize(len);
    m.signature.clear();
    unsubrelay::mime::base64_encode(sig, m.signature);
  }
};

const Signer& valid_signer() {
  static const Signer s(now - 86400, now + 86400 * 365);
  return s;
}

fb::SnsMessage notification() {
  auto p = fb::parse_sns(read_fixture("sns-notification.json"));
  EXPECT_TRUE(p.message.has_value()) << p.error;
  return *p.message;
}

const std::vector<std::string> aws_prefixes{"https://sns.us-east-1.amazonaws.com/"};

/// An SNS Timestamp for unix time t.
std::string sns_time(std::int64_t t) {
  const auto tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char out[40];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S.123Z", &tm);
  return out;
}

/// A fresh notification (Timestamp a minute ago), signed by the valid signer.
fb::SnsMessage fresh_notification() {
  auto m = notification();
  m.timestamp = sns_time(now - 60);
  valid_signer().sign(m);
  return m;
}

fb::FetchResult answer(std::string body) {
  fb::FetchResult r;
  r.status = 200;
  r.body = std::move(body);
  return r;
}

fb::FetchResult failed(fb::FetchError e) {
  fb::FetchResult r;
  r.error = e;
  return r;
}

}  // namespace

TEST(FeedbackSns, ParsesANotification) {
  const auto m = notification();
  EXPECT_EQ(m.type, fb::SnsType::notification);
  EXPECT_EQ(m.message_id, "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
  EXPECT_EQ(m.topic_arn, "arn:aws:sns:us-east-1:123456789012:ses-feedback");
  EXPECT_FALSE(m.has_subject);  // "Subject": null
  EXPECT_EQ(m.signature_version, "2");
  EXPECT_TRUE(m.signing_cert_url.starts_with("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"));
  EXPECT_TRUE(m.unsubscribe_url.starts_with("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"));
  EXPECT_TRUE(fb::parse_ses(m.message).notification.has_value());
}

TEST(FeedbackSns, ParsesASubscriptionConfirmation) {
  const auto p = fb::parse_sns(read_fixture("sns-subscription-confirmation.json"));
  ASSERT_TRUE(p.message.has_value()) << p.error;
  EXPECT_EQ(p.message->type, fb::SnsType::subscription_confirmation);
  EXPECT_TRUE(p.message->token.starts_with("2336412f37fb687f"));
  EXPECT_TRUE(p.message->subscribe_url.ends_with("&Token=" + p.message->token));
  EXPECT_TRUE(p.message->subscribe_url.starts_with("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"));
}

TEST(FeedbackSns, RejectsMalformedEnvelopes) {
  EXPECT_EQ(fb::parse_sns("").error, "not a JSON object");
  EXPECT_EQ(fb::parse_sns("[1,2]").error, "not a JSON object");
  EXPECT_EQ(fb::parse_sns("{\"Type\":\"Notification\"").error, "not a JSON object");
  auto j = nlohmann::json::parse(read_fixture("sns-notification.json"));
  j.erase("Signature");
  EXPECT_EQ(fb::parse_sns(j.dump()).error, "missing Signature");
  j = nlohmann::json::parse(read_fixture("sns-notification.json"));
  j["MessageId"] = 42;
  EXPECT_EQ(fb::parse_sns(j.dump()).error, "MessageId is not a string");
  j = nlohmann::json::parse(read_fixture("sns-subscription-confirmation.json"));
  j.erase("SubscribeURL");
  EXPECT_EQ(fb::parse_sns(j.dump()).error, "missing SubscribeURL");
  EXPECT_EQ(fb::parse_sns(std::string(300 * 1024, ' ')).error, "body over 262144 bytes");
}

TEST(FeedbackSns, StringToSignFollowsAwsFieldOrder) {
  fb::SnsMessage m;
  m.type = fb::SnsType::notification;
  m.type_text = "Notification";
  m.message = "M";
  m.message_id = "I";
  m.timestamp = "T";
  m.topic_arn = "A";
  m.subscribe_url = "ignored";
  EXPECT_EQ(fb::string_to_sign(m).value(), "Message\nM\nMessageId\nI\nTimestamp\nT\nTopicArn\nA\nType\nNotification\n");
  m.has_subject = true;
  m.subject = "S";
  EXPECT_EQ(fb::string_to_sign(m).value(),
            "Message\nM\nMessageId\nI\nSubject\nS\nTimestamp\nT\nTopicArn\nA\nType\nNotification\n");
  m.type = fb::SnsType::subscription_confirmation;
  m.type_text = "SubscriptionConfirmation";
  m.token = "K";
  m.subscribe_url = "U";
  EXPECT_EQ(fb::string_to_sign(m).value(), "Message\nM\nMessageId\nI\nSubscribeURL\nU\nTimestamp\nT\nToken\nK\n"
                                           "TopicArn\nA\nType\nSubscriptionConfirmation\n");
  m.type = fb::SnsType::other;
  EXPECT_FALSE(fb::string_to_sign(m).has_value());
}

TEST(FeedbackSns, VerifiesVersionsOneAndTwo) {
  for (const char* version : {"1", "2"}) {
    auto m = notification();
    m.signature_version = version;
    valid_signer().sign(m);
    EXPECT_EQ(fb::verify_signature(m, valid_signer().pem, now), fb::SignatureError::none) << version;
    // The version names the digest: a SHA-1 signature does not pass as SHA-256.
    m.signature_version = std::string(version) == "1" ? "2" : "1";
    EXPECT_EQ(fb::verify_signature(m, valid_signer().pem, now), fb::SignatureError::bad_signature) << version;
  }
}

TEST(FeedbackSns, TamperedFieldsFailVerification) {
  auto m = notification();
  valid_signer().sign(m);
  auto tampered = m;
  tampered.message.replace(tampered.message.find("jane@"), 5, "john@");
  EXPECT_EQ(fb::verify_signature(tampered, valid_signer().pem, now), fb::SignatureError::bad_signature);
  tampered = m;
  tampered.topic_arn += "x";
  EXPECT_EQ(fb::verify_signature(tampered, valid_signer().pem, now), fb::SignatureError::bad_signature);
  tampered = m;
  tampered.has_subject = true;  // an added Subject changes the string to sign
  EXPECT_EQ(fb::verify_signature(tampered, valid_signer().pem, now), fb::SignatureError::bad_signature);
  // Another key's certificate.
  const Signer other(now - 10, now + 1000);
  EXPECT_EQ(fb::verify_signature(m, other.pem, now), fb::SignatureError::bad_signature);
}

TEST(FeedbackSns, CertificateValidityAndFormatErrors) {
  const Signer expired(now - 86400 * 30, now - 86400);
  const Signer future(now + 86400, now + 86400 * 30);
  auto m = notification();
  expired.sign(m);
  EXPECT_EQ(fb::verify_signature(m, expired.pem, now), fb::SignatureError::certificate_expired);
  future.sign(m);
  EXPECT_EQ(fb::verify_signature(m, future.pem, now), fb::SignatureError::certificate_not_yet_valid);
  valid_signer().sign(m);
  EXPECT_EQ(fb::verify_signature(m, "not a certificate", now), fb::SignatureError::bad_certificate);
  EXPECT_EQ(fb::verify_signature(m, "", now), fb::SignatureError::bad_certificate);
  auto bad = m;
  bad.signature = "***";
  EXPECT_EQ(fb::verify_signature(bad, valid_signer().pem, now), fb::SignatureError::bad_signature_encoding);
  bad = m;
  bad.signature_version = "3";
  EXPECT_EQ(fb::verify_signature(bad, valid_signer().pem, now), fb::SignatureError::unsupported_version);
  bad = m;
  bad.type = fb::SnsType::other;
  EXPECT_EQ(fb::verify_signature(bad, valid_signer().pem, now), fb::SignatureError::unknown_type);
}

TEST(FeedbackSns, ParseHttpsUrl) {
  auto u = fb::parse_https_url("https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "sns.us-east-1.amazonaws.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/SimpleNotificationService-abc.pem");
  u = fb::parse_https_url("https://127.0.0.1:8443?Action=ConfirmSubscription");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/?Action=ConfirmSubscription");
  u = fb::parse_https_url("https://[::1]:8443/x");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::1");
  for (const char* bad : {"http://sns.us-east-1.amazonaws.com/x.pem", "HTTPS://sns.example/x", "https://",
                          "https://user@sns.us-east-1.amazonaws.com/x.pem",
                          "https://sns.us-east-1.amazonaws.com:443@evil.example/x.pem",
                          "https://sns.example:0/", "https://sns.example:99999/", "https://sns.example:/",
                          "https://sns.example/a b", "https://sns.example/x#frag", "https://sns.example\\@evil/",
                          "https://sns.example/../admin", "https://sns.example/a/%2e%2e/admin",
                          "https://sns.example/a%2Fb", "https://sns_example/", "https://[::1/", "ftp://x/",
                          "https://sns.example/\x01"}) {
    EXPECT_FALSE(fb::parse_https_url(bad).has_value()) << bad;
  }
}

TEST(FeedbackSns, UrlAllowListComparesTheHostWhole) {
  const std::vector<std::string> no_slash{"https://sns.us-east-1.amazonaws.com"};
  for (const auto& prefixes : {aws_prefixes, no_slash}) {
    EXPECT_TRUE(fb::url_allowed("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", prefixes));
    EXPECT_TRUE(fb::url_allowed("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=1", prefixes));
    EXPECT_FALSE(fb::url_allowed("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", prefixes));
    EXPECT_FALSE(fb::url_allowed("https://sns.us-east-1.amazonaws.com:8443/x.pem", prefixes));
    EXPECT_FALSE(fb::url_allowed("https://sns.us-west-2.amazonaws.com/x.pem", prefixes));
    EXPECT_FALSE(fb::url_allowed("http://sns.us-east-1.amazonaws.com/x.pem", prefixes));
    EXPECT_FALSE(fb::url_allowed("https://evil.example@sns.us-east-1.amazonaws.com/x.pem", prefixes));
  }
  const std::vector<std::string> path_prefix{"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"};
  EXPECT_TRUE(fb::url_allowed("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0a.pem", path_prefix));
  EXPECT_FALSE(fb::url_allowed("https://sns.us-east-1.amazonaws.com/other.pem", path_prefix));
  EXPECT_FALSE(fb::url_allowed("https://sns.us-east-1.amazonaws.com/x.pem", {}));
  EXPECT_FALSE(fb::url_allowed("https://sns.us-east-1.amazonaws.com/x.pem", {"http://sns.us-east-1.amazonaws.com/"}));
}

TEST(FeedbackSes, PermanentBounce) {
  const auto p = fb::parse_ses(read_fixture("ses-bounce-permanent.json"));
  ASSERT_TRUE(p.notification.has_value()) << p.error;
  const auto& n = *p.notification;
  EXPECT_EQ(n.kind, fb::SesKind::bounce);
  EXPECT_EQ(n.bounce_type, "Permanent");
  EXPECT_EQ(n.bounce_sub_type, "General");
  EXPECT_EQ(n.feedback_id, "0100018c1d2e3f4a-5b6c7d8e-aaaa-bbbb-cccc-0123456789ab-000000");
  EXPECT_EQ(n.message_id, "0100018c1d2e3f4a-11111111-2222-3333-4444-555555555555-000000");
  EXPECT_EQ(n.source, "news@example.net");
  ASSERT_EQ(n.destination.size(), 1u);
  ASSERT_EQ(n.bounced.size(), 1u);
  EXPECT_EQ(n.bounced[0].email_address, "jane@example.com");
  EXPECT_EQ(n.bounced[0].action, "failed");
  EXPECT_EQ(n.bounced[0].status, "5.1.1");
  EXPECT_EQ(n.bounced[0].diagnostic_code, "smtp; 550 5.1.1 <jane@example.com>... User unknown");
  EXPECT_EQ(fb::classify_ses_bounce(n.bounce_type), fb::BounceKind::hard);
}

TEST(FeedbackSes, TransientBounceWithSparseRecipient) {
  const auto p = fb::parse_ses(read_fixture("ses-bounce-transient.json"));
  ASSERT_TRUE(p.notification.has_value()) << p.error;
  EXPECT_EQ(fb::classify_ses_bounce(p.notification->bounce_type), fb::BounceKind::soft);
  ASSERT_EQ(p.notification->bounced.size(), 2u);
  EXPECT_EQ(p.notification->bounced[1].email_address, "also-full@example.com");
  EXPECT_EQ(p.notification->bounced[1].status, "");
  EXPECT_EQ(fb::classify_ses_bounce("Undetermined"), fb::BounceKind::unknown);
}

TEST(FeedbackSes, ComplaintDeliveryAndEventPublishing) {
  auto p = fb::parse_ses(read_fixture("ses-complaint.json"));
  ASSERT_TRUE(p.notification.has_value()) << p.error;
  EXPECT_EQ(p.notification->kind, fb::SesKind::complaint);
  ASSERT_EQ(p.notification->complained.size(), 1u);
  EXPECT_EQ(p.notification->complained[0], "richard@example.com");
  EXPECT_EQ(p.notification->complaint_feedback_type, "abuse");
  EXPECT_EQ(p.notification->complaint_sub_type, "");  // null
  EXPECT_EQ(p.notification->feedback_id, "0100018c1d2e3f4a-complaint-0001-000000");

  p = fb::parse_ses(read_fixture("ses-delivery.json"));
  ASSERT_TRUE(p.notification.has_value()) << p.error;
  EXPECT_EQ(p.notification->kind, fb::SesKind::delivery);
  ASSERT_EQ(p.notification->delivered.size(), 1u);
  EXPECT_EQ(p.notification->delivered[0], "ok@example.com");

  p = fb::parse_ses(read_fixture("ses-event-bounce.json"));  // configuration-set event publishing
  ASSERT_TRUE(p.notification.has_value()) << p.error;
  EXPECT_EQ(p.notification->kind_text, "Bounce");
  EXPECT_EQ(p.notification->kind, fb::SesKind::bounce);
  EXPECT_EQ(p.notification->bounce_sub_type, "OnAccountSuppressionList");
  EXPECT_EQ(p.notification->bounced[0].email_address, "suppressed@example.com");
}

TEST(FeedbackSes, BadShapesAreErrorsNotThrows) {
  EXPECT_EQ(fb::parse_ses("nonsense").error, "not a JSON object");
  EXPECT_EQ(fb::parse_ses("{}").error, "no notificationType or eventType");
  EXPECT_EQ(fb::parse_ses(R"({"notificationType":7})").error, "notificationType or eventType is not a string");
  EXPECT_EQ(fb::parse_ses(R"({"notificationType":"Bounce"})").error, "no bounce object");
  EXPECT_EQ(fb::parse_ses(R"({"notificationType":"Bounce","bounce":{"bounceType":"Permanent"}})").error,
            "bounce without bouncedRecipients");
  EXPECT_EQ(fb::parse_ses(R"({"notificationType":"Bounce","bounce":{"bounceType":1,"bouncedRecipients":[]}})").error,
            "a bounce member is not a string");
  EXPECT_EQ(fb::parse_ses(R"({"notificationType":"Complaint","complaint":{}})").error,
            "complaint without complainedRecipients");
  EXPECT_EQ(fb::parse_ses(R"({"notificationType":"Bounce","mail":{"messageId":[]},"bounce":{}})").error,
            "mail.messageId or mail.source is not a string");
  const auto other = fb::parse_ses(R"({"eventType":"Open","mail":{"messageId":"m"}})");
  ASSERT_TRUE(other.notification.has_value());
  EXPECT_EQ(other.notification->kind, fb::SesKind::other);
  std::string many = R"({"notificationType":"Complaint","complaint":{"complainedRecipients":[)";
  for (int i = 0; i < 2000; ++i) many += std::string(i ? "," : "") + R"({"emailAddress":"a@b.c"})";
  many += "]}}";
  EXPECT_EQ(fb::parse_ses(many, 50).notification->complained.size(), 50u);
}

TEST(FeedbackSnsCheck, OrderOfChecksAndNoFetchForStrangers) {
  std::atomic<int> fetches = 0;
  fb::FetchPool pool(2, 6);
  fb::CertificateCache cache([&](const std::string&) { return ++fetches, answer(valid_signer().pem); }, pool);
  const fb::SnsPolicy policy{{"arn:aws:sns:us-east-1:123456789012:ses-feedback"}, aws_prefixes};
  const auto m = fresh_notification();

  auto stranger = m;
  stranger.topic_arn = "arn:aws:sns:us-east-1:999999999999:other";
  EXPECT_EQ(fb::check_sns(stranger, policy, cache, now).verdict, fb::SnsVerdict::unlisted_topic);
  auto evil_url = m;
  evil_url.signing_cert_url = "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem";
  EXPECT_EQ(fb::check_sns(evil_url, policy, cache, now).verdict, fb::SnsVerdict::cert_url_not_allowed);
  EXPECT_EQ(fetches, 0);

  EXPECT_TRUE(fb::check_sns(m, policy, cache, now).ok());
  EXPECT_TRUE(fb::check_sns(m, policy, cache, now).ok());
  EXPECT_EQ(fetches, 1);  // the second came from the cache
  auto tampered = m;
  tampered.message += " ";
  const auto c = fb::check_sns(tampered, policy, cache, now);
  EXPECT_EQ(c.verdict, fb::SnsVerdict::signature_invalid);
  EXPECT_EQ(c.signature, fb::SignatureError::bad_signature);

  auto confirm = *fb::parse_sns(read_fixture("sns-subscription-confirmation.json")).message;
  confirm.subscribe_url = "https://169.254.169.254/latest/meta-data/";
  confirm.timestamp = sns_time(now);
  valid_signer().sign(confirm);
  EXPECT_EQ(fb::check_sns(confirm, policy, cache, now).verdict, fb::SnsVerdict::subscribe_url_not_allowed);
}

TEST(FeedbackSnsCheck, CheapChecksComeBeforeAnyFetch) {
  std::atomic<int> fetches = 0;
  fb::FetchPool pool(2, 6);
  fb::CertificateCache cache([&](const std::string&) { return ++fetches, answer(valid_signer().pem); }, pool);
  const fb::SnsPolicy policy{{"arn:aws:sns:us-east-1:123456789012:ses-feedback"}, aws_prefixes, 86400};
  int n = 0;
  auto check = [&](auto change) {
    auto m = fresh_notification();
    change(m);
    m.signing_cert_url += "?" + std::to_string(++n);  // never cached
    return fb::check_sns(m, policy, cache, now);
  };
  const auto old = check([](fb::SnsMessage& m) { m.timestamp = sns_time(now - 86400 - 1); });
  EXPECT_EQ(old.verdict, fb::SnsVerdict::stale_timestamp);
  EXPECT_NE(old.detail.find("86401 s old"), std::string::npos) << old.detail;
  EXPECT_EQ(check([](fb::SnsMessage& m) { m.timestamp = sns_time(now + 3601); }).verdict,
            fb::SnsVerdict::stale_timestamp);
  for (const auto* bad : {"", "2027-01-15", "2027-01-15T08:00:00", "2027-01-15T08:00:00+00:00", "2027-13-01T00:00:00Z",
                          "2027-01-15T08:00:00.Z", "2027-01-15 08:00:00Z", "1800000000"}) {
    EXPECT_EQ(check([&](fb::SnsMessage& m) { m.timestamp = bad; }).verdict, fb::SnsVerdict::stale_timestamp) << bad;
  }
  EXPECT_EQ(check([](fb::SnsMessage& m) { m.signature_version = "3"; }).signature,
            fb::SignatureError::unsupported_version);
  EXPECT_EQ(check([](fb::SnsMessage& m) { m.signature = "not base64!"; }).signature,
            fb::SignatureError::bad_signature_encoding);
  EXPECT_EQ(check([](fb::SnsMessage& m) { m.type = fb::SnsType::other; }).signature, fb::SignatureError::unknown_type);
  EXPECT_EQ(fetches, 0);
  // Just inside both bounds: fetched and verified.
  EXPECT_TRUE(check([](fb::SnsMessage& m) { m.timestamp = sns_time(now - 86400); valid_signer().sign(m); }).ok());
  EXPECT_TRUE(check([](fb::SnsMessage& m) { m.timestamp = sns_time(now + 3600); valid_signer().sign(m); }).ok());
  EXPECT_EQ(fetches, 2);
}

TEST(FeedbackSnsCheck, SnsTimestamps) {
  EXPECT_EQ(fb::parse_sns_timestamp("2012-04-26T20:45:04.751Z"), 1335473104);
  EXPECT_EQ(fb::parse_sns_timestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(fb::parse_sns_timestamp(sns_time(now)), now);
  EXPECT_FALSE(fb::parse_sns_timestamp("2012-04-26T20:45:04.751Zjunk"));
  EXPECT_FALSE(fb::parse_sns_timestamp("2012-04-26T24:00:00Z"));
  EXPECT_FALSE(fb::parse_sns_timestamp("2012-4-26T20:45:04Z"));
}

TEST(FeedbackSnsCheck, FailedFetchIsRemembered) {
  std::atomic<int> fetches = 0;
  fb::FetchPool pool(2, 6);
  fb::CertificateCache cache([&](const std::string&) { return ++fetches, failed(fb::FetchError::timeout); }, pool,
                             {.max_failures = 2});
  const fb::SnsPolicy policy{{"arn:aws:sns:us-east-1:123456789012:ses-feedback"}, aws_prefixes};
  const auto m = fresh_notification();
  for (int i = 0; i < 5; ++i) {
    const auto c = fb::check_sns(m, policy, cache, now + i);
    EXPECT_EQ(c.verdict, fb::SnsVerdict::certificate_unavailable);
    EXPECT_EQ(c.fetch, fb::FetchError::timeout);
  }
  EXPECT_EQ(fetches, 1);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.failures(), 1u);
  // Forgotten after failed_fetch_ttl: tried again.
  EXPECT_FALSE(cache.get(m.signing_cert_url, now + fb::failed_fetch_ttl.count()).ok());
  EXPECT_EQ(fetches, 2);
  // The remembered failures are bounded too.
  cache.get("https://a/1", now);
  cache.get("https://a/2", now + 1);
  cache.get("https://a/3", now + 2);
  EXPECT_EQ(cache.failures(), 2u);
}

TEST(FeedbackSnsCheck, CacheIsBoundedAndExpires) {
  std::atomic<int> fetches = 0;
  fb::FetchPool pool(2, 6);
  fb::CertificateCache cache([&](const std::string& url) { return ++fetches, answer(url); }, pool,
                             {.max_entries = 2, .ttl = std::chrono::seconds(100)});
  EXPECT_EQ(cache.get("a", now).body, "a");
  EXPECT_EQ(cache.get("b", now + 1).body, "b");
  EXPECT_EQ(cache.get("c", now + 2).body, "c");  // evicts "a", the oldest
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(fetches, 3);
  cache.get("b", now + 3);
  EXPECT_EQ(fetches, 3);
  cache.get("a", now + 4);
  EXPECT_EQ(fetches, 4);
  cache.get("c", now + 200);  // older than the ttl
  EXPECT_EQ(fetches, 5);
}

TEST(FeedbackSnsCheck, OneFetchPerUrlAndABoundedNumberOfWaiters) {
  // A fetch that does not end until the test says so.
  std::promise<void> release;
  const auto released = release.get_future().share();
  std::atomic<int> fetches = 0;
  fb::FetchPool pool(2, 4);
  fb::CertificateCache cache(
      [&](const std::string& url) {
        ++fetches;
        released.wait();
        return answer(url);
      },
      pool);
  // Four callers for one URL share one fetch and take the four places.
  std::vector<std::future<fb::FetchResult>> waiting;
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(std::async(std::launch::async, [&] { return cache.get("https://a/slow", now); }));
    while (pool.waiting() < static_cast<std::size_t>(i + 1)) std::this_thread::yield();
  }
  // A fifth finds no place and is told so at once, whatever its URL.
  const auto busy = cache.get("https://a/other", now);
  EXPECT_EQ(busy.error, fb::FetchError::busy);
  EXPECT_EQ(cache.get("https://a/slow", now).error, fb::FetchError::busy);
  release.set_value();
  for (auto& w : waiting) EXPECT_EQ(w.get().body, "https://a/slow");
  EXPECT_EQ(fetches, 1);
  EXPECT_EQ(pool.waiting(), 0u);
  EXPECT_EQ(cache.get("https://a/slow", now).body, "https://a/slow");  // cached now
  EXPECT_EQ(fetches, 1);
}
