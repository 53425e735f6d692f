#include <gtest/gtest.h>

#include "engine/core/result.hpp"

using namespace budstikke;

namespace {
Result<int> half(int x) {
  if (x % 2) return Error::permanent(ErrorDomain::kCodec, "odd: " + std::to_string(x), 7);
  return x / 2;
}
}  // namespace

TEST(Result, ValueAndError) {
  const auto a = half(4);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 2);
  const auto b = half(3);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, 7);
  EXPECT_FALSE(b.error().retriable);
  EXPECT_EQ(b.error().to_string(), "codec: odd: 3");
  const Status s = Error::transient(ErrorDomain::kKafka, "broker down");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error().to_string(), "kafka (retriable): broker down");
}
