// The delivery stage's memory of the jobs it delivered (design note 37): an id is known for
// as long as `keep`, at most `cap` ids are held, and the oldest go first.

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "engine/delivery/recently_delivered.hpp"

namespace budstikke::delivery {
namespace {

using namespace std::chrono_literals;
using Clock = RecentlyDelivered::Clock;

TEST(RecentlyDelivered, KnowsAnIdForAsLongAsItKeepsIt) {
  RecentlyDelivered r(10s, 100);
  const Clock::time_point t0{};
  r.add("job-1", t0);
  EXPECT_TRUE(r.has("job-1", t0));
  EXPECT_TRUE(r.has("job-1", t0 + 10s));
  EXPECT_FALSE(r.has("job-1", t0 + 10s + 1ms));
  EXPECT_FALSE(r.has("job-2", t0));
}

TEST(RecentlyDelivered, LetsGoOfExpiredIdsWhenTheNextComes) {
  RecentlyDelivered r(10s, 100);
  const Clock::time_point t0{};
  for (int i = 0; i < 5; ++i) r.add("old-" + std::to_string(i), t0 + std::chrono::seconds(i));
  EXPECT_EQ(r.size(), 5U);
  // At t0 + 13 s the ids added at 0, 1 and 2 s are older than 10 s.
  r.add("new", t0 + 13s);
  EXPECT_EQ(r.size(), 3U);
  EXPECT_FALSE(r.has("old-2", t0 + 13s));
  EXPECT_TRUE(r.has("old-3", t0 + 13s));
  EXPECT_TRUE(r.has("new", t0 + 13s));
}

TEST(RecentlyDelivered, HoldsAtMostItsCapAndTheOldestGoFirst) {
  RecentlyDelivered r(1h, 1000);
  const Clock::time_point t0{};
  for (int i = 0; i < 2500; ++i)
    r.add("job-" + std::to_string(i), t0 + std::chrono::milliseconds(i));
  EXPECT_EQ(r.size(), 1000U);
  const Clock::time_point now = t0 + 3s;
  EXPECT_FALSE(r.has("job-0", now));
  EXPECT_FALSE(r.has("job-1499", now));
  EXPECT_TRUE(r.has("job-1500", now));
  EXPECT_TRUE(r.has("job-2499", now));
}

TEST(RecentlyDelivered, ASecondAddOfAnIdKeepsItsFirstTime) {
  RecentlyDelivered r(10s, 100);
  const Clock::time_point t0{};
  r.add("job-1", t0);
  r.add("job-1", t0 + 5s);
  EXPECT_EQ(r.size(), 1U);
  // Known from its first delivery, so gone 10 s after that one.
  EXPECT_FALSE(r.has("job-1", t0 + 11s));
}

}  // namespace
}  // namespace budstikke::delivery
