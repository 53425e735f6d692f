#include <gtest/gtest.h>

#include "engine/core/redact.hpp"

using namespace budstikke;

TEST(Redact, ElevenDigitRunsAreMasked) {
  EXPECT_EQ(redact_identity_numbers("patient 13116900216 admitted"),
            "patient *********** admitted");
  EXPECT_EQ(redact_identity_numbers("13116900216"), "***********");
  EXPECT_EQ(redact_identity_numbers("a=13116900216,b=01010112345"), "a=***********,b=***********");
}

TEST(Redact, OtherNumbersAreKept) {
  // HER-ids (up to 9 digits), organisation numbers (9), longer runs (e.g. 12+ digit ids).
  EXPECT_EQ(redact_identity_numbers("her 8142987 org 974589095"), "her 8142987 org 974589095");
  EXPECT_EQ(redact_identity_numbers("131169002161"), "131169002161");
  EXPECT_EQ(redact_identity_numbers("1311690021"), "1311690021");
  EXPECT_FALSE(contains_identity_number("id 123456789012"));
  EXPECT_TRUE(contains_identity_number("x13116900216x"));
}

TEST(Redact, FodselsnummerCheckDigits) {
  EXPECT_TRUE(is_valid_fodselsnummer("13116900216"));   // a published test number
  EXPECT_FALSE(is_valid_fodselsnummer("13116900217"));  // wrong second check digit
  EXPECT_FALSE(is_valid_fodselsnummer("1311690021"));
  EXPECT_FALSE(is_valid_fodselsnummer("1311690021a"));
}

TEST(Redact, HexIdentifiersAreNotPeople) {
  // A UUID whose last group has 11 digits in a row, and a sha256 prefix.
  const std::string uuid = "1b4e28ba-2fa1-41d2-883f-a12345678901";
  EXPECT_EQ(redact_identity_numbers(uuid), uuid);
  EXPECT_EQ(redact_identity_numbers("deadbeef12345678901"), "deadbeef12345678901");
  // But a person's number glued to ordinary words is still caught.
  EXPECT_EQ(redact_identity_numbers("fnr13116900216"), "fnr***********");
  EXPECT_EQ(redact_identity_numbers("msg-13116900216"), "msg-***********");
  EXPECT_EQ(redact_identity_numbers("PID|||13116900216^^^FNR"), "PID|||***********^^^FNR");
}
