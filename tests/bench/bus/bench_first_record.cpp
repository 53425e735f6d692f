// How long a new producer's first record to each topic takes to be acknowledged: the
// engine's bus::Producer, which fetches every topic's metadata when it is created
// (ProducerOptions::warm_metadata, design note 58), against the same producer without that
// step, which is librdkafka 2.0.2 on its own (the peer). An engine that starts writes the
// first record of every topic it uses this way: an ingest ACK, a tracking record, a dead
// letter.
//
// Each run creates a producer, then sends one record to each of TOPICS existing topics in
// turn, waiting for each acknowledgement; then a second record to the first topic (the
// time of a topic already known). Runs alternate between the two producers. Then the same
// with a route's bus::TransactionalProducer, one transaction (begin, one record, commit) per
// topic.
//
// usage: bench_first_record BOOTSTRAP [TOPICS=8] [RUNS=5]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/bus/bus.hpp"

using namespace budstikke;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Run {
  double create_ms = 0;
  std::vector<double> first_ms;  // per topic
  double known_ms = 0;
};

bool txn_run(const bus::KafkaSettings& ks, const std::vector<std::string>& topics, bool warm,
             Run& out) {
  const auto t0 = Clock::now();
  auto p = bus::TransactionalProducer::create(ks, topics.front() + ".txn", std::chrono::seconds(60),
                                              warm);
  out.create_ms = ms_since(t0);
  if (!p) {
    std::fprintf(stderr, "transactional producer: %s\n", p.error().message.c_str());
    return false;
  }
  auto one = [&](const std::string& t) -> double {
    const auto t1 = Clock::now();
    Status st = (*p)->begin();
    if (st) st = (*p)->send({t, "k", "first", {}, -1});
    if (st) st = (*p)->commit();
    if (!st) {
      std::fprintf(stderr, "transaction to %s: %s\n", t.c_str(), st.error().message.c_str());
      return -1;
    }
    return ms_since(t1);
  };
  for (const auto& t : topics) {
    const double ms = one(t);
    if (ms < 0) return false;
    out.first_ms.push_back(ms);
  }
  out.known_ms = one(topics.front());
  return out.known_ms >= 0;
}

bool one_run(const bus::KafkaSettings& ks, const std::vector<std::string>& topics, bool warm,
             Run& out) {
  bus::ProducerOptions po;
  po.warm_metadata = warm;
  const auto t0 = Clock::now();
  auto p = bus::Producer::create(ks, po);
  out.create_ms = ms_since(t0);
  if (!p) {
    std::fprintf(stderr, "producer: %s\n", p.error().message.c_str());
    return false;
  }
  for (const auto& t : topics) {
    const auto t1 = Clock::now();
    auto d = (*p)->send_sync({t, "k", "first", {}, -1}, std::chrono::seconds(30));
    if (!d) {
      std::fprintf(stderr, "send to %s: %s\n", t.c_str(), d.error().message.c_str());
      return false;
    }
    out.first_ms.push_back(ms_since(t1));
  }
  const auto t2 = Clock::now();
  auto d = (*p)->send_sync({topics.front(), "k", "second", {}, -1}, std::chrono::seconds(30));
  if (!d) return false;
  out.known_ms = ms_since(t2);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_first_record BOOTSTRAP [TOPICS=8] [RUNS=5]\n");
    return 2;
  }
  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = argv[1];
  const int n = argc > 2 ? std::max(1, std::atoi(argv[2])) : 8;
  const int runs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5;

  const std::string prefix =
      "bench-first-" + std::to_string(Clock::now().time_since_epoch().count() % 1000000000) + ".";
  std::vector<std::string> topics;
  std::vector<bus::TopicSpec> specs;
  for (int i = 0; i < n; ++i) {
    topics.push_back(prefix + "t" + std::to_string(i));
    bus::TopicSpec s;
    s.name = topics.back();
    s.partitions = 1;
    s.replication = 1;
    specs.push_back(s);
  }
  if (auto st = bus::ensure_topics(ks, specs); !st) {
    std::fprintf(stderr, "topics: %s\n", st.error().message.c_str());
    return 1;
  }

  // Per producer kind: each run's median and largest first-record time, its create time,
  // and the known-topic time.
  struct Figures {
    std::vector<double> first_median, first_max, create, known, total;
  };
  int rc = 0;
  for (const bool txn : {false, true}) {
    Figures fig[2];
    const char* names[2] = {txn ? "transactional, alone" : "librdkafka alone",
                            txn ? "transactional, warmed" : "bus::Producer (warmed)"};
    std::printf("%s\n", txn ? "\nbus::TransactionalProducer, a transaction per topic:"
                            : "bus::Producer, a record per topic:");
    for (int r = 0; r < runs && rc == 0; ++r)
      for (int warm = 1; warm >= 0; --warm) {
        Run run;
        if (!(txn ? txn_run : one_run)(ks, topics, warm == 1, run)) {
          rc = 1;
          break;
        }
        auto& f = fig[warm];
        f.first_median.push_back(median(run.first_ms));
        f.first_max.push_back(*std::max_element(run.first_ms.begin(), run.first_ms.end()));
        f.create.push_back(run.create_ms);
        f.known.push_back(run.known_ms);
        double sum = run.create_ms;
        for (double x : run.first_ms) sum += x;
        f.total.push_back(sum);
        std::printf(
            "run %d %-24s create %6.1f ms, first record per topic median %7.1f max "
            "%7.1f ms, known topic %5.1f ms, create + %d first records %7.1f ms\n",
            r + 1, names[warm], run.create_ms, f.first_median.back(), f.first_max.back(),
            run.known_ms, n, sum);
      }
    if (rc != 0) break;
    std::printf("%d topics, %d runs each, medians over runs:\n", n, runs);
    for (int warm = 1; warm >= 0; --warm) {
      const auto& f = fig[warm];
      std::printf(
          "  %-24s create %6.1f ms, first record %7.1f ms (max %7.1f), known %5.1f ms, "
          "total %7.1f ms\n",
          names[warm], median(f.create), median(f.first_median), median(f.first_max),
          median(f.known), median(f.total));
    }
    const double wm = median(fig[1].first_median);
    const double wt = median(fig[1].total);
    std::printf("  first record: alone / warmed = %.1fx; create + all first records: %.1fx\n",
                wm > 0 ? median(fig[0].first_median) / wm : 0,
                wt > 0 ? median(fig[0].total) / wt : 0);
  }
  (void)bus::delete_topics(ks, topics);
  return rc;
}
