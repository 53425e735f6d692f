// Produce and consume throughput of 1 KB records on the local broker:
//   bus   - Budstikke's engine bus (Producer::send with a delivery callback per record,
//           Consumer::poll + store + periodic commit)
//   raw   - a minimal librdkafka C loop with the same client settings (the limit)
//   kcat  - kcat -P / kcat -C on the same records (the peer)
// Each is run RUNS times on a fresh topic; the median is reported with ratios.
//
// usage: bench_bus BOOTSTRAP [RECORDS=100000] [RUNS=5] [SIZE=1024]

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "engine/bus/bus.hpp"

using namespace budstikke;
using Clock = std::chrono::steady_clock;

namespace {

std::string g_bootstrap;
int g_records = 100000;
int g_size = 1024;
int g_seq = 0;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bus::KafkaSettings settings() {
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = g_bootstrap;
  s.compression = "none";  // as the other contenders (kProducerProps)
  return s;
}

std::string new_topic(const char* what) {
  std::string t = std::string("bench.") + what + "." + std::to_string(::getpid()) + "." +
                  std::to_string(++g_seq);
  if (auto st = bus::ensure_topics(settings(), {{t, 4, 1, {}}}); !st) {
    std::fprintf(stderr, "create topic: %s\n", st.error().message.c_str());
    std::exit(1);
  }
  return t;
}

// The same producer settings for every contender: idempotent, acks=all, linger 5 ms.
const char* const kProducerProps[][2] = {{"enable.idempotence", "true"},
                                         {"acks", "all"},
                                         {"linger.ms", "5"},
                                         {"queue.buffering.max.messages", "1000000"},
                                         {"queue.buffering.max.kbytes", "1048576"},
                                         {"compression.codec", "none"}};

double bus_produce(const std::string& topic) {
  bus::ProducerOptions po;
  auto p = bus::Producer::create(settings(), po);
  if (!p) std::exit(1);
  std::atomic<int> ok{0};
  const std::string value(static_cast<size_t>(g_size), 'x');
  bus::Record r{topic, "", value, {}, -1};
  const auto t0 = Clock::now();
  for (int i = 0; i < g_records; ++i)
    if (!(*p)->send(r, [&](const Result<bus::Delivery>& d) {
          if (d.ok()) ok.fetch_add(1, std::memory_order_relaxed);
        }))
      std::exit(1);
  if (!(*p)->flush(std::chrono::seconds(120))) std::exit(1);
  const double s = seconds_since(t0);
  if (ok.load() != g_records) std::fprintf(stderr, "bus: only %d delivered\n", ok.load());
  return s;
}

std::atomic<int> g_raw_ok{0};

double raw_produce(const std::string& topic) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap.c_str(), err, sizeof err);
  for (auto& kv : kProducerProps) rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof err);
  g_raw_ok = 0;
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    if (!m->err) g_raw_ok.fetch_add(1, std::memory_order_relaxed);
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  std::string value(static_cast<size_t>(g_size), 'x');
  const auto t0 = Clock::now();
  for (int i = 0; i < g_records; ++i) {
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.data(),
                            value.size(), nullptr, 0, nullptr) == -1 &&
           rd_kafka_last_error() == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 1);
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 120000);
  rd_kafka_topic_destroy(rkt);
  const double s = seconds_since(t0);
  rd_kafka_destroy(rk);
  if (g_raw_ok.load() != g_records)
    std::fprintf(stderr, "raw: only %d delivered\n", g_raw_ok.load());
  return s;
}

double kcat_produce(const std::string& topic, const std::string& input_file) {
  std::string cmd = "kcat -P -b " + g_bootstrap + " -t " + topic;
  for (auto& kv : kProducerProps) cmd += std::string(" -X ") + kv[0] + "=" + kv[1];
  cmd += " < " + input_file;
  const auto t0 = Clock::now();
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "kcat -P failed\n");
  return seconds_since(t0);
}

double bus_consume(const std::string& topic) {
  auto c = bus::Consumer::create(settings(), "bench-bus-" + topic, {topic});
  if (!c) std::exit(1);
  int n = 0;
  const auto t0 = Clock::now();
  while (n < g_records) {
    auto m = (*c)->poll(std::chrono::milliseconds(100));
    if (!m) std::exit(1);
    if (!m->has_value()) continue;
    (void)(*c)->store(**m);
    if (++n % 10000 == 0) (void)(*c)->commit(false);
  }
  (void)(*c)->commit(true);
  return seconds_since(t0);
}

double raw_consume(const std::string& topic) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", ("bench-raw-" + topic).c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "true", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  int n = 0;
  const auto t0 = Clock::now();
  while (n < g_records) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (!m->err) ++n;
    rd_kafka_message_destroy(m);
  }
  const double s = seconds_since(t0);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return s;
}

double kcat_consume(const std::string& topic) {
  const std::string cmd = "kcat -C -b " + g_bootstrap + " -t " + topic + " -o beginning -e -q -c " +
                          std::to_string(g_records) + " > /dev/null";
  const auto t0 = Clock::now();
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "kcat -C failed\n");
  return seconds_since(t0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_bus BOOTSTRAP [RECORDS] [RUNS] [SIZE]\n");
    return 2;
  }
  g_bootstrap = argv[1];
  if (argc > 2) g_records = std::atoi(argv[2]);
  const int runs = argc > 3 ? std::atoi(argv[3]) : 5;
  if (argc > 4) g_size = std::atoi(argv[4]);

  const std::string input = "/tmp/bench_bus_input." + std::to_string(::getpid());
  {
    FILE* f = std::fopen(input.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", input.c_str());
      return 1;
    }
    const std::string line(static_cast<size_t>(g_size), 'x');
    for (int i = 0; i < g_records; ++i) std::fprintf(f, "%s\n", line.c_str());
    if (std::fclose(f) != 0) {
      std::fprintf(stderr, "cannot write %s\n", input.c_str());
      return 1;
    }
  }
  std::vector<double> prod[3];
  std::vector<double> cons[3];
  std::vector<std::string> topics;
  for (int r = 0; r < runs; ++r) {
    // Interleave the contenders so drift of the machine affects all alike.
    const std::string tb = new_topic("bus");
    const std::string tr = new_topic("raw");
    const std::string tk = new_topic("kcat");
    topics.insert(topics.end(), {tb, tr, tk});
    prod[0].push_back(bus_produce(tb));
    prod[1].push_back(raw_produce(tr));
    prod[2].push_back(kcat_produce(tk, input));
    cons[0].push_back(bus_consume(tb));
    cons[1].push_back(raw_consume(tr));
    cons[2].push_back(kcat_consume(tk));
    std::fprintf(
        stderr,
        "run %d: produce bus %.2fs raw %.2fs kcat %.2fs | consume bus %.2fs raw %.2fs kcat %.2fs\n",
        r + 1, prod[0].back(), prod[1].back(), prod[2].back(), cons[0].back(), cons[1].back(),
        cons[2].back());
    (void)bus::delete_topics(settings(), {tb, tr, tk});
  }
  (void)std::remove(input.c_str());
  const char* names[3] = {"bus", "raw librdkafka", "kcat"};
  const double mb = static_cast<double>(g_records) * g_size / 1e6;
  std::printf("records=%d size=%dB runs=%d (median)\n", g_records, g_size, runs);
  std::printf("%-16s %14s %10s %14s %10s\n", "", "produce msg/s", "MB/s", "consume msg/s", "MB/s");
  double pm[3];
  double cm[3];
  for (int i = 0; i < 3; ++i) {
    pm[i] = median(prod[i]);
    cm[i] = median(cons[i]);
    std::printf("%-16s %14.0f %10.1f %14.0f %10.1f\n", names[i], g_records / pm[i], mb / pm[i],
                g_records / cm[i], mb / cm[i]);
  }
  std::printf("bus/raw: produce %.2f consume %.2f | bus/kcat: produce %.2f consume %.2f\n",
              pm[1] / pm[0], cm[1] / cm[0], pm[2] / pm[0], cm[2] / cm[0]);
  return 0;
}
