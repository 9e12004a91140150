// token_test.cpp: signing, verification, tampering, rotation, expiry.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "unsubrelay/common/text.hpp"
#include "unsubrelay/token/token.hpp"

using namespace unsubrelay::token;

namespace {

KeySet keys(std::vector<Key> k) {
  std::vector<std::string> errors;
  auto set = KeySet::from_keys(std::move(k), errors);
  EXPECT_TRUE(set) << (errors.empty() ? "" : errors[0]);
  return *set;
}

const Key key_a{"k2026a", std::string(32, 'a')};
const Key key_b{"k2026b", std::string(40, 'b')};

Claims claims() {
  Claims c;
  c.uid = *parse_uid("OBD4hymEG9yJEftINDvuZA");
  c.email_id = "222222222";
  c.launch_list_id = "111111111";
  c.issued = 1'800'000'000;
  return c;
}

}  // namespace

TEST(Token, RoundTripAndUrlForm) {
  const auto set = keys({key_a});
  const auto t = sign(claims(), key_a);
  EXPECT_LT(t.size(), 120u);
  for (char ch : t) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_');
  EXPECT_EQ(t.find('@'), std::string::npos);
  for (const auto& input : {t, "https://unsub.example.com/u/" + t, "https://unsub.example.com/u/" + t + "/"}) {
    const auto v = verify(input, set, 1'800'000'100);
    ASSERT_TRUE(v.claims) << describe(v.error);
    EXPECT_EQ(v.claims->email_id, "222222222");
    EXPECT_EQ(v.claims->launch_list_id, "111111111");
    EXPECT_EQ(v.claims->uid, claims().uid);
    EXPECT_EQ(v.claims->key_id, "k2026a");
  }
}

TEST(Token, UidText) {
  const auto uid = parse_uid("OBD4hymEG9yJEftINDvuZA");
  ASSERT_TRUE(uid);
  EXPECT_EQ(uid_text(*uid), "OBD4hymEG9yJEftINDvuZA");
  EXPECT_FALSE(parse_uid("short"));
  EXPECT_FALSE(parse_uid("OBD4hymEG9yJEftINDvuZA==="));
}

TEST(Token, RandomUidTextIsANewParsableUid) {
  const auto a = random_uid_text(), b = random_uid_text();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 22u);
  EXPECT_TRUE(parse_uid(*a));
  EXPECT_NE(*a, *b);
}

TEST(Token, HmacSha256AsHexMatchesRfc4231) {
  // RFC 4231, test case 2 (webhook signatures and erased-address hashes are this, in hex).
  EXPECT_EQ(unsubrelay::hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(unsubrelay::hex(std::span<const unsigned char>()), "");
}

TEST(Token, EveryTamperedByteIsRefused) {
  const auto set = keys({key_a});
  const auto t = sign(claims(), key_a);
  const auto raw = *base64url_decode(t);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = raw;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      const auto v = verify(base64url_encode(bad), set, 1'800'000'100);
      EXPECT_FALSE(v.claims) << "byte " << i << " bit " << bit;
    }
  }
  for (std::size_t len = 0; len < t.size(); ++len) EXPECT_FALSE(verify(t.substr(0, len), set, 0).claims);
}

TEST(Token, Reasons) {
  const auto set = keys({key_a});
  auto t = sign(claims(), key_a);
  EXPECT_EQ(verify(sign(claims(), key_b), set, 0).error, TokenError::unknown_key);
  auto raw = *base64url_decode(t);
  raw[0] = 3;  // 1: no topic, 2: with a topic (topics_test.cpp)
  EXPECT_EQ(verify(base64url_encode(raw), set, 0).error, TokenError::wrong_version);
  raw = *base64url_decode(t);
  raw.back() ^= 1;
  EXPECT_EQ(verify(base64url_encode(raw), set, 0).error, TokenError::bad_signature);
  auto c = claims();
  c.expires = 1'800'000'500;
  const auto expiring = sign(c, key_a);
  EXPECT_TRUE(verify(expiring, set, 1'800'000'499).claims);
  EXPECT_EQ(verify(expiring, set, 1'800'000'500).error, TokenError::expired);
  EXPECT_EQ(verify("", set, 0).error, TokenError::malformed);
  EXPECT_EQ(verify("!!!!", set, 0).error, TokenError::malformed);
  EXPECT_EQ(verify(std::string(10240, 'A'), set, 0).error, TokenError::malformed);
  EXPECT_EQ(verify(t + "=", set, 0).error, TokenError::malformed);
}

TEST(Token, RotationFirstSignsAllVerify) {
  const auto old_token = sign(claims(), key_a);
  const auto rotated = keys({key_b, key_a});
  EXPECT_EQ(rotated.signing().id, "k2026b");
  EXPECT_TRUE(verify(old_token, rotated, 0).claims);
  EXPECT_TRUE(verify(sign(claims(), rotated.signing()), rotated, 0).claims);
}

TEST(KeySet, ValidatesIdsAndSecrets) {
  std::vector<std::string> errors;
  EXPECT_FALSE(KeySet::from_keys({{"bad id!", std::string(32, 'x')}}, errors));
  EXPECT_FALSE(KeySet::from_keys({{"short", "tooshort"}}, errors));
  EXPECT_FALSE(KeySet::from_keys({}, errors));
  EXPECT_EQ(errors.size(), 3u);
}

TEST(KeySet, GeneratedFileLoads) {
  const auto path = std::filesystem::temp_directory_path() / "unsubrelay-keys-test.yaml";
  std::ofstream(path) << generate_keys_file("k9");
  std::vector<std::string> errors;
  const auto set = KeySet::load(path.string(), errors);
  ASSERT_TRUE(set) << (errors.empty() ? "" : errors[0]);
  EXPECT_EQ(set->signing().id, "k9");
  EXPECT_EQ(set->signing().secret.size(), 32u);
  std::ofstream(path) << "keys:\n  - {id: x, secret: \"not base64!\"}\n";
  errors.clear();
  EXPECT_FALSE(KeySet::load(path.string(), errors));
  EXPECT_FALSE(errors.empty());
  std::filesystem::remove(path);
}

// fuzz_token found that a token whose last base64url character carried
// non-zero spare bits verified too: up to 16 spellings of one token. Only the
// canonical spelling verifies now.
TEST(Token, FuzzFindingNonCanonicalBase64IsRefused) {
  std::ifstream in(std::string(UNSUBRELAY_TEST_DATA) + "/fuzz/token-noncanonical-base64.txt", std::ios::binary);
  std::string url((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(url.empty());
  std::vector<std::string> errors;
  const auto keys = KeySet::from_keys({{"k1", std::string(32, 'k')}}, errors);  // the fuzzer's key
  ASSERT_TRUE(keys);
  EXPECT_FALSE(verify(url, *keys, 1'800'000'000).claims);
  std::string canonical = url;
  canonical.back() = 'g';  // the same bytes, spare bits zero
  const auto v = verify(canonical, *keys, 1'800'000'000);
  ASSERT_TRUE(v.claims);
  EXPECT_EQ(sign(*v.claims, keys->signing()), canonical.substr(canonical.rfind("/u/") + 3));
  EXPECT_EQ(base64url_decode("QQ"), std::optional<std::string>("A"));  // canonical
  EXPECT_FALSE(base64url_decode("QR"));  // the same byte with a spare bit set
  EXPECT_EQ(base64url_decode("QUI"), std::optional<std::string>("AB"));
  EXPECT_FALSE(base64url_decode("QUJ"));
}
