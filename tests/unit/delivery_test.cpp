// delivery_test.cpp: backoff, expiry and bounce messages.
#include <gtest/gtest.h>

#include "unsubrelay/delivery/bounce.hpp"
#include "unsubrelay/delivery/retry.hpp"

using namespace unsubrelay::delivery;

TEST(Retry, ExponentialBackoffIsCapped) {
  const RetryPolicy p{300, 4000, 120};
  EXPECT_EQ(backoff_seconds(p, 1), 300);
  EXPECT_EQ(backoff_seconds(p, 2), 600);
  EXPECT_EQ(backoff_seconds(p, 3), 1200);
  EXPECT_EQ(backoff_seconds(p, 4), 2400);
  EXPECT_EQ(backoff_seconds(p, 5), 4000);
  EXPECT_EQ(backoff_seconds(p, 500), 4000);
}

TEST(Retry, Expiry) {
  const RetryPolicy p{1, 2, 2};
  EXPECT_FALSE(expired(p, 1000, 1000 + 7199));
  EXPECT_TRUE(expired(p, 1000, 1000 + 7200));
}

TEST(Bounce, IsAWellFormedDeliveryStatusNotification) {
  const std::string original = "From: a@example.com\r\nSubject: hello\r\n\r\nsecret body\r\n";
  const auto dsn = build_bounce({"relay.test", "0123456789ABCDEF", "a@example.com", 1000, 2000,
                                 {{"b@example.org", "5.1.1", "550 5.1.1 <b@example.org>: no such user"}},
                                 original});
  EXPECT_NE(dsn.find("To: <a@example.com>\r\n"), std::string::npos);
  EXPECT_NE(dsn.find("Content-Type: multipart/report; report-type=delivery-status;"), std::string::npos);
  EXPECT_NE(dsn.find("Reporting-MTA: dns; relay.test\r\n"), std::string::npos);
  EXPECT_NE(dsn.find("Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"),
            std::string::npos);
  EXPECT_NE(dsn.find("Subject: hello\r\n"), std::string::npos);
  EXPECT_EQ(dsn.find("secret body"), std::string::npos);  // headers only are returned
  EXPECT_NE(dsn.find("Auto-Submitted: auto-replied"), std::string::npos);
  // CRLF only, and the closing boundary is there.
  for (std::size_t i = 0; i < dsn.size(); ++i) {
    if (dsn[i] == '\n') {
      ASSERT_TRUE(i > 0 && dsn[i - 1] == '\r') << i;
    }
  }
  EXPECT_NE(dsn.find("--0123456789ABCDEF.2000/relay.test--\r\n"), std::string::npos);
}
