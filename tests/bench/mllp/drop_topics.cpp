// Deletes a benchmark run's topics: every topic whose name starts with PREFIX. The MLLP bench
// scripts give each run its own prefix; without this each run left ~20 topics (~80
// partitions) on the broker, and a broker with thousands of idle partitions does more work
// per request, so later runs measured a slower broker (BENCHMARKS.md, routes, session 4).
// usage: bench_drop_topics BOOTSTRAP PREFIX
#include <cstdio>
#include <string>

#include "engine/bus/bus.hpp"

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[2]).size() < 3) {
    std::fprintf(stderr, "usage: bench_drop_topics BOOTSTRAP PREFIX (at least 3 characters)\n");
    return 2;
  }
  const std::string prefix = argv[2];
  budstikke::bus::KafkaSettings k;
  k.properties["bootstrap.servers"] = argv[1];
  auto mine = budstikke::bus::topics_with_prefix(k, prefix);
  if (!mine) {
    std::fprintf(stderr, "bench_drop_topics: %s\n", mine.error().message.c_str());
    return 1;
  }
  if (auto st = budstikke::bus::delete_topics(k, *mine); !st) {
    std::fprintf(stderr, "bench_drop_topics: %s\n", st.error().message.c_str());
    return 1;
  }
  std::printf("deleted %zu topics under %s\n", mine->size(), prefix.c_str());
  return 0;
}
