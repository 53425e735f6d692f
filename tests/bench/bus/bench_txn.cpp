// CPU per Kafka transaction in librdkafka's threads, as a route stage makes them: begin, the
// records, commit, through the engine's bus::TransactionalProducer on the local broker, at a
// paced rate, with the CPU of each thread of this process (by name) over the run. Shows the
// cost design note 44 is about (librdkafka 2.0.2's main thread busy-waits for its timers),
// and whether a newer librdkafka still has it. Results: BENCHMARKS.md, routes, session 24.
//
// usage: bench_txn BOOTSTRAP [TRANSACTIONS=1000] [RATE=100] [PAUSE_US=100]
//   each of: no records (begin + commit), 1 record, 8 records on 4 partitions; PAUSE_US is
//   kafka.busy_wait_pause_us (0: librdkafka's main thread spins as it would without the
//   engine's brake, design note 56)

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "engine/bus/bus.hpp"

using namespace budstikke;
using Clock = std::chrono::steady_clock;

namespace {

// CPU time (utime + stime, in clock ticks) of this process's threads, summed by thread name.
std::map<std::string, long> cpu_by_thread_name() {
  std::map<std::string, long> out;
  DIR* d = opendir("/proc/self/task");
  if (!d) return out;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string dir = std::string("/proc/self/task/") + e->d_name;
    std::string name, stat;
    std::getline(std::ifstream(dir + "/comm"), name);
    std::getline(std::ifstream(dir + "/stat"), stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    // After the name: state, then fields 4..; utime and stime are fields 14 and 15.
    long v[13] = {};
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 2, "%c %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld",
                    &state, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                    &v[10], &v[11]) == 13)
      out[name] += v[10] + v[11];
  }
  closedir(d);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_txn BOOTSTRAP [TRANSACTIONS=1000] [RATE=100] [PAUSE_US=100]\n");
    return 2;
  }
  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = argv[1];
  const int n = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int rate = argc > 3 ? std::atoi(argv[3]) : 100;
  if (argc > 4) ks.busy_wait_pause_us = std::atoi(argv[4]);
  if (n < 1 || rate < 1 || ks.busy_wait_pause_us < 0) {
    std::fprintf(stderr,
                 "bench_txn: TRANSACTIONS and RATE must be at least 1, PAUSE_US at "
                 "least 0\n");
    return 2;
  }
  std::printf("busy_wait_pause_us=%d\n", ks.busy_wait_pause_us);
  const std::string topic = "bench.txn." + std::to_string(::getpid());
  if (auto st = bus::ensure_topics(ks, {{topic, 4, 1, {}}}); !st) {
    std::fprintf(stderr, "create topic: %s\n", st.error().message.c_str());
    return 1;
  }
  auto producer = bus::TransactionalProducer::create(ks, "bench-txn-" + std::to_string(::getpid()));
  if (!producer) {
    std::fprintf(stderr, "producer: %s\n", producer.error().message.c_str());
    return 1;
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  // Runs `count` transactions of `records` records each, one every 1/rate s; returns each
  // transaction's time from begin to the commit's answer, in milliseconds.
  auto run = [&](int count, int records) {
    const auto period = std::chrono::microseconds(1000000 / rate);
    auto next = Clock::now();
    std::vector<double> took;
    took.reserve(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      const auto begun = Clock::now();
      Status st = (*producer)->begin();
      for (int r = 0; st && r < records; ++r) {
        bus::Record rec;
        rec.topic = topic;
        rec.partition = r % 4;
        rec.key = "k" + std::to_string(r);
        rec.value = "x";
        st = (*producer)->send(rec);
      }
      if (st) st = (*producer)->commit();
      if (!st) {
        std::fprintf(stderr, "transaction: %s\n", st.error().message.c_str());
        std::exit(1);
      }
      took.push_back(std::chrono::duration<double, std::milli>(Clock::now() - begun).count());
      next += period;
      std::this_thread::sleep_until(next);
    }
    std::sort(took.begin(), took.end());
    return took;
  };
  run(50, 1);  // warm-up: producer id, coordinator, first registrations
  for (const int records : {0, 1, 8}) {
    const auto before = cpu_by_thread_name();
    const auto t0 = Clock::now();
    const auto took = run(n, records);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto after = cpu_by_thread_name();
    std::printf(
        "records_per_transaction=%d transactions=%d seconds=%.1f (%.0f/s) "
        "transaction_ms p50=%.2f p99=%.2f\n",
        records, n, secs, n / secs, took[took.size() / 2], took[took.size() * 99 / 100]);
    for (const auto& [name, ticks] : after) {
      const auto b = before.find(name);
      const long used = ticks - (b == before.end() ? 0 : b->second);
      std::printf("  %-16s %6.0f us CPU per transaction (%.3f cores)\n", name.c_str(),
                  static_cast<double>(used) * 1e6 / static_cast<double>(hz) / n,
                  static_cast<double>(used) / static_cast<double>(hz) / secs);
    }
  }
  (void)bus::delete_topics(ks, {topic});
  return 0;
}
