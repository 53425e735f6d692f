#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>

#include "engine/core/time.hpp"

namespace budstikke {
namespace {

// What the C library says the same instant is (the engine's formatter before session 36).
std::string reference(int64_t epoch_ms) {
  const int64_t secs = epoch_ms >= 0 ? epoch_ms / 1000 : -((-epoch_ms + 999) / 1000);
  const int ms = static_cast<int>(epoch_ms - secs * 1000);
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  (void)std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

TEST(Time, Rfc3339KnownInstants) {
  EXPECT_EQ(rfc3339_from_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339_from_ms(1'795'218'187'123), "2026-11-20T23:43:07.123Z");
  EXPECT_EQ(rfc3339_from_ms(951'782'400'000), "2000-02-29T00:00:00.000Z");  // a leap day
  EXPECT_EQ(rfc3339_from_ms(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(rfc3339_from_ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(Time, Rfc3339AgreesWithTheCLibrary) {
  std::mt19937_64 rng(36);
  // Every day boundary's neighbours over four centuries, and random instants.
  std::uniform_int_distribution<int64_t> any(-2'208'988'800'000, 253'402'300'799'999);
  for (int i = 0; i < 200'000; ++i) {
    const int64_t ms = any(rng);
    ASSERT_EQ(rfc3339_from_ms(ms), reference(ms)) << ms;
  }
  for (int64_t day = -25'567; day <= 2'932'896; day += 7) {
    for (const int64_t off : {-1, 0, 1, 999, 1000, 86'399'999}) {
      const int64_t ms = day * 86'400'000 + off;
      ASSERT_EQ(rfc3339_from_ms(ms), reference(ms)) << ms;
    }
  }
}

TEST(Time, Rfc3339OutsideFourDigitYears) {
  // Year 10000 on: what the C library writes (five digits), not a wrapped year.
  EXPECT_EQ(rfc3339_from_ms(253'402'300'800'000), reference(253'402'300'800'000));
  EXPECT_EQ(rfc3339_from_ms(253'402'300'800'000).substr(0, 6), "10000-");
}

TEST(Time, NowIsTheCurrentInstant) {
  const int64_t before = now_epoch_ms();
  const std::string now = now_rfc3339();
  const int64_t after = now_epoch_ms();
  EXPECT_GE(now, reference(before));
  EXPECT_LE(now, reference(after));
  EXPECT_EQ(now.size(), 24U);
}

}  // namespace
}  // namespace budstikke
