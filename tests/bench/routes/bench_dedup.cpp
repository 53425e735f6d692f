// The delivery stage's duplicate check (delivery::RecentlyDelivered), alone: every job a
// worker picks is looked up once, and every job delivered is added, in a table that holds
// the last `cap` job ids (200,000 by default; at 20,000 deliveries a second it is full after
// ten seconds, so each add lets the oldest id go).
//
//   bench_dedup [ids] [runs] [cap]
//
// Prints the thread CPU time per delivery (a lookup of the job before it is sent, its add
// after, and a lookup of a job delivered a thousand deliveries earlier, as a record read
// again would be) for each run and their median. Job ids are UUID strings as the routes make
// them. CPU time, not wall time: the figure is about the work, on a machine shared with
// whatever else runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "engine/delivery/recently_delivered.hpp"

namespace {

double thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

std::string uuid_like(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(36, '-');
  for (size_t i = 0; i < s.size(); ++i)
    if (i != 8 && i != 13 && i != 18 && i != 23) s[i] = kHex[rng() & 15U];
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  const size_t cap = argc > 3 ? std::strtoul(argv[3], nullptr, 10)
                              : budstikke::delivery::RecentlyDelivered::kDefaultCap;
  // The table must hold the id looked up a thousand deliveries later.
  if (n < 2000 || runs < 1 || cap <= 1000) {
    std::fprintf(stderr, "usage: bench_dedup [ids >= 2000] [runs >= 1] [cap > 1000]\n");
    return 2;
  }
  std::mt19937_64 rng(47);
  std::vector<std::string> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) ids.push_back(uuid_like(rng));

  std::vector<double> per;
  for (int r = 0; r < runs; ++r) {
    budstikke::delivery::RecentlyDelivered table(std::chrono::hours(1), cap);
    size_t found = 0;
    const double t0 = thread_cpu_ns();
    for (size_t i = 0; i < n; ++i) {
      found += table.has(ids[i]) ? 1 : 0;
      table.add(ids[i]);
      if (i >= 1000) found += table.has(ids[i - 1000]) ? 1 : 0;
    }
    const double ns = (thread_cpu_ns() - t0) / static_cast<double>(n);
    // Every id is new when first looked up, and one delivered a thousand earlier is held.
    if (found != n - 1000) {
      std::fprintf(stderr, "bench_dedup: %zu ids found, expected %zu\n", found, n - 1000);
      return 1;
    }
    per.push_back(ns);
    std::printf("run=%d ids=%zu cap=%zu ns_per_delivery=%.0f\n", r + 1, n, cap, ns);
  }
  std::sort(per.begin(), per.end());
  std::printf("median ns_per_delivery=%.0f\n", per[per.size() / 2]);
  return 0;
}
