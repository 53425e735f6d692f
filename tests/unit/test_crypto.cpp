#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "engine/core/crypto.hpp"

using namespace budstikke;

TEST(Crypto, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, HmacRfc4231TestCase2) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// The keyed context is kept per thread: repeated messages, a key change and back, and an
// empty key must each give the RFC 4231 / one-shot answers.
TEST(Crypto, HmacKeyedContextIsReusedCorrectly) {
  const std::string key1(20, '\x0b');  // RFC 4231 test case 1
  const std::string tc1 = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
  const std::string tc2 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(hmac_sha256_hex(key1, "Hi There"), tc1);
    EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"), tc2);
  }
  EXPECT_EQ(hmac_sha256_hex(key1, "Hi There"), tc1);
  EXPECT_EQ(hmac_sha256_hex(key1, "Hi There"), tc1);
  // HMAC with an empty key and message (a well-known value).
  EXPECT_EQ(hmac_sha256_hex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(Crypto, Base64RoundTripAllLengths) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    data.push_back(static_cast<char>((i * 37) & 0xff));
    const auto enc = base64_encode(data);
    EXPECT_EQ(enc.size() % 4, 0u);
    const auto dec = base64_decode(enc);
    ASSERT_TRUE(dec.has_value()) << i;
    EXPECT_EQ(*dec, data);
  }
  EXPECT_EQ(base64_encode("Man"), "TWFu");
  EXPECT_EQ(base64_encode("Ma"), "TWE=");
  EXPECT_EQ(base64_encode("M"), "TQ==");
}

TEST(Crypto, Base64SkipsWhitespaceAndRejectsGarbage) {
  EXPECT_EQ(base64_decode("TW\nFu\r\n TWE=").value(), "ManMa");
  EXPECT_FALSE(base64_decode("TW*u").has_value());
  EXPECT_FALSE(base64_decode("TWF").has_value());
  EXPECT_FALSE(base64_decode("TQ==TQ==").has_value());
}

TEST(Crypto, UuidV4IsWellFormedAndUnique) {
  const std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto u = uuid_v4();
    EXPECT_TRUE(std::regex_match(u, re)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}
