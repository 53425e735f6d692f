// The brake on librdkafka's busy-waits (design note 56): which threads it pauses, and when.
// The process's clock_gettime is the engine's (engine/bus/spin_brake.cpp), so every reading
// here goes through it, as librdkafka's do.

#include <gtest/gtest.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "engine/bus/spin_brake.hpp"

using namespace budstikke;
using namespace std::chrono_literals;

namespace {

int64_t monotonic_ns() {
  timespec ts{};
  EXPECT_EQ(::clock_gettime(CLOCK_MONOTONIC, &ts), 0);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Reads the monotonic clock `reads` times in a row, as a loop that waits for a timer does;
// returns the readings.
std::vector<int64_t> spin(int reads) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(reads));
  for (int i = 0; i < reads; ++i) out.push_back(monotonic_ns());
  return out;
}

// Runs f on a new thread marked for the brake; returns the pauses it took.
template <typename F>
long on_braked_thread(F f) {
  const long before = bus::spin_brake_pauses();
  std::thread([&] {
    bus::brake_this_thread();
    f();
  }).join();
  return bus::spin_brake_pauses() - before;
}

TEST(SpinBrakeDefault, PausesFor100Microseconds) {
  EXPECT_EQ(bus::spin_brake_pause(), 100us);
}

class SpinBrake : public ::testing::Test {
 protected:
  void TearDown() override { bus::configure_spin_brake(100us); }
};

TEST_F(SpinBrake, AMarkedThreadSpinningOnTheClockIsPausedAndItsReadingsStayTrue) {
  std::vector<int64_t> readings;
  const long pauses = on_braked_thread([&] { readings = spin(2000); });
  // A pause after every 16 quick readings (fewer if the thread was preempted in between).
  EXPECT_GE(pauses, 1);
  EXPECT_LE(pauses, 2000 / 16);
  int64_t longest = 0;
  for (size_t i = 1; i < readings.size(); ++i) {
    ASSERT_GE(readings[i], readings[i - 1]) << "reading " << i << " went back in time";
    longest = std::max(longest, readings[i] - readings[i - 1]);
  }
  // The reading that follows a pause is taken after it, not before.
  EXPECT_GE(longest, 100'000);
}

TEST_F(SpinBrake, AThreadNotMarkedIsNeverPaused) {
  const long before = bus::spin_brake_pauses();
  (void)spin(1000);
  EXPECT_EQ(bus::spin_brake_pauses() - before, 0);
}

TEST_F(SpinBrake, AShortBurstOfReadingsIsWorkNotABusyWait) {
  EXPECT_EQ(on_braked_thread([] { (void)spin(16); }), 0);
}

TEST_F(SpinBrake, ReadingsWithTimeBetweenThemAreNotABusyWait) {
  const long pauses = on_braked_thread([] {
    for (int i = 0; i < 100; ++i) {
      (void)monotonic_ns();
      // nanosleep does not read the clock through clock_gettime.
      timespec gap{0, 50'000};
      ::nanosleep(&gap, nullptr);
    }
  });
  EXPECT_EQ(pauses, 0);
}

TEST_F(SpinBrake, OtherClocksAreNotWatched) {
  EXPECT_EQ(on_braked_thread([] {
              for (int i = 0; i < 1000; ++i) {
                timespec ts{};
                ::clock_gettime(CLOCK_REALTIME, &ts);
                ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
              }
            }),
            0);
}

TEST_F(SpinBrake, APauseOfZeroTurnsTheBrakeOff) {
  bus::configure_spin_brake(0us);
  EXPECT_EQ(on_braked_thread([] { (void)spin(1000); }), 0);
  bus::configure_spin_brake(250us);
  EXPECT_EQ(bus::spin_brake_pause(), 250us);
  EXPECT_GT(on_braked_thread([] { (void)spin(1000); }), 0);
}

}  // namespace
