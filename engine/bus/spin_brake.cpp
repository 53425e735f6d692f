#include "engine/bus/spin_brake.hpp"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace budstikke::bus {
namespace {

using ClockFn = int (*)(clockid_t, timespec*);

std::atomic<ClockFn> g_real{nullptr};
std::atomic<int64_t> g_pause_ns{100'000};
std::atomic<long> g_pauses{0};
std::atomic<metrics::Counter*> g_counter{nullptr};

// Per thread: marked by brake_this_thread; the previous monotonic reading and how many
// readings in a row came less than kQuickNs after the one before.
thread_local bool t_braked = false;
thread_local int64_t t_last_ns = 0;
thread_local int t_quick = 0;

// A reading this soon after the previous one is a turn of a loop that does nothing else.
constexpr int64_t kQuickNs = 10'000;
// This many such readings in a row are a busy-wait, not a burst of work.
constexpr int kQuickInARow = 16;

int syscall_clock(clockid_t id, timespec* ts) {
  return static_cast<int>(::syscall(SYS_clock_gettime, id, ts));
}

ClockFn real_clock() {
  ClockFn f = g_real.load(std::memory_order_acquire);
  if (f == nullptr) {
    // The next definition in the lookup order: the C library's (or a sanitizer's wrapper).
    void* sym = ::dlsym(RTLD_NEXT, "clock_gettime");
    f = sym != nullptr ? reinterpret_cast<ClockFn>(sym) : &syscall_clock;
    g_real.store(f, std::memory_order_release);
  }
  return f;
}

int64_t to_ns(const timespec& ts) {
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

void brake_this_thread() noexcept {
  t_braked = true;
  t_quick = 0;
}

void configure_spin_brake(std::chrono::microseconds pause, metrics::Counter* pauses) noexcept {
  g_pause_ns.store(pause.count() > 0 ? pause.count() * 1000 : 0, std::memory_order_relaxed);
  if (pauses != nullptr) g_counter.store(pauses, std::memory_order_release);
}

std::chrono::microseconds spin_brake_pause() noexcept {
  return std::chrono::microseconds(g_pause_ns.load(std::memory_order_relaxed) / 1000);
}

long spin_brake_pauses() noexcept {
  return g_pauses.load(std::memory_order_relaxed);
}

}  // namespace budstikke::bus

// The process's clock_gettime: the C library's, plus the brake for marked threads.
extern "C" int clock_gettime(clockid_t id, timespec* ts) noexcept {
  using namespace budstikke::bus;
  const int rc = real_clock()(id, ts);
  if (!t_braked || rc != 0 || id != CLOCK_MONOTONIC) return rc;
  const int64_t now = to_ns(*ts);
  t_quick = now - t_last_ns < kQuickNs ? t_quick + 1 : 0;
  t_last_ns = now;
  if (t_quick < kQuickInARow) return rc;
  const int64_t pause = g_pause_ns.load(std::memory_order_relaxed);
  if (pause <= 0) return rc;
  t_quick = 0;
  g_pauses.fetch_add(1, std::memory_order_relaxed);
  if (auto* counter = g_counter.load(std::memory_order_acquire)) counter->inc();
  const int saved_errno = errno;  // a clock reading leaves errno as it was
  timespec nap{static_cast<time_t>(pause / 1'000'000'000),
               static_cast<long>(pause % 1'000'000'000)};
  while (::nanosleep(&nap, &nap) != 0 && errno == EINTR) {
  }
  errno = saved_errno;
  const int rc2 = real_clock()(id, ts);
  t_last_ns = to_ns(*ts);
  return rc2;
}
