// Deletes a benchmark run's topics: every topic whose name starts with PREFIX. The MLLP bench
// scripts give each run its own prefix; without this each run left ~20 topics (~80
// partitions) on the broker, and a broker with thousands of idle partitions does more work
// per request, so later runs measured a slower broker (BENCHMARKS.md, routes, session 4).
// usage: bench_drop_topics BOOTSTRAP PREFIX
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/bus/bus.hpp"

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[2]).size() < 3) {
    std::fprintf(stderr, "usage: bench_drop_topics BOOTSTRAP PREFIX (at least 3 characters)\n");
    return 2;
  }
  const std::string prefix = argv[2];
  budstikke::bus::KafkaSettings k;
  k.properties["bootstrap.servers"] = argv[1];
  auto topics = budstikke::bus::list_topics(k);
  if (!topics) {
    std::fprintf(stderr, "bench_drop_topics: %s\n", topics.error().message.c_str());
    return 1;
  }
  std::vector<std::string> mine;
  for (const auto& t : *topics)
    if (t.rfind(prefix, 0) == 0) mine.push_back(t);
  if (auto st = budstikke::bus::delete_topics(k, mine, std::chrono::seconds(60)); !st) {
    std::fprintf(stderr, "bench_drop_topics: %s\n", st.error().message.c_str());
    return 1;
  }
  std::printf("deleted %zu topics under %s\n", mine.size(), prefix.c_str());
  return 0;
}
