#pragma once

#include <chrono>

#include "engine/core/metrics.hpp"

// A brake on librdkafka 2.0.2's busy-wait (design note 56).
//
// librdkafka's main thread waits for its next timer in whole milliseconds rounded down, so
// while a timer is less than 1 ms away it polls its queue with a 0 ms timeout, over and over,
// until the timer is due (fixed upstream in 2024, confluentinc/librdkafka#4671; Debian's
// librdkafka is older). Every transactional producer arms two such timers per transaction.
// Each turn of that loop reads the monotonic clock; the engine's own clock_gettime (in
// spin_brake.cpp, which takes the place of the C library's for the whole process) notices a
// thread marked here reading the clock many times in a row with no time between, and, when a
// pause is configured (kafka.busy_wait_pause_us, 100 us by default), puts it to sleep for that
// pause instead: the timer fires at most that pause late, and the millisecond of spinning
// costs a few wake-ups.
namespace budstikke::bus {

// Marks the calling thread as one whose busy-waits are braked (the main threads of the
// transactional producers, from an on_thread_start interceptor).
void brake_this_thread() noexcept;

// The pause (default 100 us; zero turns the brake off for every thread) and a counter of the
// pauses taken, for the metrics (may be null).
void configure_spin_brake(std::chrono::microseconds pause,
                          metrics::Counter* pauses = nullptr) noexcept;
std::chrono::microseconds spin_brake_pause() noexcept;

// How many pauses the brake took in this process.
long spin_brake_pauses() noexcept;

}  // namespace budstikke::bus
