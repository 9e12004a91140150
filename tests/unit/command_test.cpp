// command_test.cpp: command lines, paths, parameters and mailbox syntax.
#include <gtest/gtest.h>

#include "unsubrelay/smtp/address.hpp"
#include "unsubrelay/smtp/command.hpp"

using namespace unsubrelay::smtp;

TEST(Command, VerbsAreCaseInsensitiveWithArguments) {
  auto c = parse_command("ehlo client.example");
  EXPECT_EQ(c.verb, Verb::ehlo);
  EXPECT_EQ(c.argument, "client.example");
  c = parse_command("MAIL FROM:<a@b.c>  SIZE=10 ");
  EXPECT_EQ(c.verb, Verb::mail);
  EXPECT_EQ(c.argument, "FROM:<a@b.c>  SIZE=10");
  EXPECT_EQ(parse_command("QUIT").verb, Verb::quit);
  EXPECT_EQ(parse_command("StartTLS").verb, Verb::starttls);
  EXPECT_EQ(parse_command("MAILX FROM:<>").verb, Verb::unknown);
  EXPECT_EQ(parse_command("").verb, Verb::unknown);
  EXPECT_TRUE(looks_like_http("GET / HTTP/1.1"));
  EXPECT_TRUE(looks_like_http("POST /x HTTP/1.0"));
  EXPECT_FALSE(looks_like_http("EHLO get"));
}

TEST(Path, NullSenderOnlyWhereAllowed) {
  auto p = parse_path_argument("FROM:<>", "FROM:", true);
  ASSERT_TRUE(p.value);
  EXPECT_EQ(p.value->mailbox, "");
  EXPECT_FALSE(parse_path_argument("TO:<>", "TO:", false).value);
}

TEST(Path, ParametersAreSplitAndUpperCased) {
  auto p = parse_path_argument("FROM:<a@example.com> size=1000 body=8BITMIME", "FROM:", true);
  ASSERT_TRUE(p.value);
  EXPECT_EQ(p.value->mailbox, "a@example.com");
  ASSERT_EQ(p.value->parameters.size(), 2u);
  EXPECT_EQ(p.value->parameters[0].keyword, "SIZE");
  EXPECT_EQ(p.value->parameters[0].value, "1000");
  EXPECT_EQ(p.value->parameters[1].keyword, "BODY");
}

TEST(Path, LenientForms) {
  EXPECT_EQ(parse_path_argument("FROM: <a@example.com>", "FROM:", true).value->mailbox, "a@example.com");
  EXPECT_EQ(parse_path_argument("to:b@example.org", "TO:", false).value->mailbox, "b@example.org");
}

TEST(Path, SourceRoutesAreDropped) {
  auto p = parse_path_argument("TO:<@relay.example,@other.example:user@final.example>", "TO:", false);
  ASSERT_TRUE(p.value) << p.error;
  EXPECT_EQ(p.value->mailbox, "user@final.example");
}

TEST(Path, QuotedLocalPartsMayHoldAtAndAngle) {
  auto p = parse_path_argument("TO:<\"odd>@name\"@example.org>", "TO:", false);
  ASSERT_TRUE(p.value) << p.error;
  EXPECT_EQ(p.value->mailbox, "\"odd>@name\"@example.org");
}

TEST(Path, SyntaxErrors) {
  for (const char* bad : {"TO:<a@b.c", "TO:<a b@c.d>", "TO:<@x:>", "TO:<a@>", "TO:<@b.c>", "TO:<a@b..c>",
                          "TO:<a@-b.c>", "TO:<a@b.c>x", "TO:<\"unterminated@b.c>", "TO:<caf\xc3\xa9@b.c>",
                          "FROM:<a@b.c>"}) {
    EXPECT_FALSE(parse_path_argument(bad, "TO:", false).value) << bad;
  }
}

TEST(Mailbox, Forms) {
  EXPECT_TRUE(parse_mailbox("user%host@relay.example"));
  EXPECT_TRUE(parse_mailbox("a.b+tag@sub.example.co.uk"));
  EXPECT_TRUE(parse_mailbox("x@[192.0.2.1]"));
  EXPECT_TRUE(parse_mailbox("x@[IPv6:2001:db8::1]"));
  EXPECT_FALSE(parse_mailbox("x@[999.1.1.1]"));
  EXPECT_TRUE(parse_mailbox(std::string(100, 'a') + "@example.com"));  // VERP and u+TOKEN addresses
  EXPECT_FALSE(parse_mailbox(std::string(201, 'a') + "@example.com"));
  EXPECT_FALSE(parse_mailbox("a@" + std::string(64, 'b') + ".com"));
  std::string why;
  EXPECT_FALSE(parse_mailbox("nodomain", &why));
  EXPECT_EQ(why, "address has no domain");
}
