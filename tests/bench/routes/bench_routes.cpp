// Routing benchmark: the engine (release build) with the shipped registry (194 systems) and
// the shipped routes on the local broker. The connected systems are fake receivers in this
// process (HTTP and MLLP servers on 127.0.0.1; national systems are Kafka topics). The load
// is HL7 v2 over MLLP, one ADT^A01 (fanned out to 20 department systems and Kjernejournal)
// for every four ORU^R01 (one delivery to the hospital system), each for another patient.
//
//   bench_routes throughput SECONDS        as fast as 16 MLLP connections are ACKed
//   bench_routes latency SECONDS RATE      paced at RATE messages/s (RATE/100 connections,
//                                          at least 8; BENCH_CONNS=N sets it)
//   bench_routes faults SECONDS RATE       paced; one department system answers AE to
//                                          everything, another takes 5 s per message
//
// Prints messages/s ingested and delivered (ingest to the last delivery) and the
// ingest-to-delivery latency percentiles of the healthy systems, taken from the tracking
// topic (each delivered record carries latency_ms). A warm-up of the same load comes first
// (BENCH_WARMUP seconds, default 3; 0 = none) and is not counted: the figures are of a
// running engine, not of its first transactions. BENCH_TIMELINE=1 adds the latency per
// second of the measured phase. Paced connections are staggered and their ADT interleaved
// (an even load and an even mix, not bursts);
// the latency is also printed per kind of connector (http, mllp, kafka). BENCH_PARTITIONS=N sets
// the engine's kafka.partitions (the canonical topics' partitions; default the engine's 4).
// BENCH_JOB_TOPICS=route|system sets the engine's delivery.job_topics (default system).
// BENCH_KAFKA="linger_ms: 5; statistics_interval_ms: 0" adds keys to engine.yaml's kafka section,
// BENCH_DELIVERY="route_batch_ms: 5" to its delivery section.
// BENCH_SYSTEMS=FILE runs the engine with that registry instead of config/systems.yaml.
// BENCH_METRICS_OUT=FILE writes the engine's /metrics text from before and after the measured
// phase to FILE (separated by a line "=====AFTER"), e.g. for its queue-wait histograms.
// The "routes:" line gives the routes' transactions in the measured phase (from the engine's
// budstikke_route_transactions_total): each costs librdkafka 2.0.2 ~2 ms of CPU (note 44);
// txn_mean_ms is their mean time from begin to the commit's answer.
// The "cpu:" line gives what the measured phase cost the engine, the broker (when it listens
// on this host) and this process, in cores and in microseconds per message, from the
// process's utime + stime, read right before and after the phase (tests/support/proc_cpu.hpp).
// The "machine:" line gives the whole machine's idle and steal share over the same phase.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/core/crypto.hpp"
#include "tests/support/bench_main.hpp"
#include "tests/support/engine_process.hpp"
#include "tests/support/fake_receivers.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/mllp_client.hpp"
#include "tests/support/proc_cpu.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace std::chrono;

namespace {

constexpr const char* kDown = "solheim-onkologi";
constexpr const char* kSlow = "nordvik-barn";
constexpr int kDepartments = 20;

std::string message(const std::string& tag, int conn, long i, bool& is_adt) {
  // Each connection's ADT falls in another period: with `i % 5` alone every connection sent
  // its ADT in the same period, 1/5 of the time all ADT (each fanned out to 21 systems)
  // and none in between.
  is_adt = (i + conn) % 5 == 0;
  const std::string id = tag + std::to_string(conn) + "-" + std::to_string(i);
  const std::string patient = tag + std::to_string(conn * 10000000L + i);
  if (is_adt)
    return "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|BUDSTIKKE|REGION|20261120101500+0100||ADT^A01^"
           "ADT_A01|" +
           id + "|P|2.5\rEVN|A01|20261120101500+0100\rPID|1||P" + patient +
           "^^^NORDVIK^PI||Testesen^Ola||19520804|M|||Fjordveien 1^^Fjordbyen^^9990^NOR\rPV1|1|"
           "I|MED^201^1^NORDVIK\r";
  return "MSH|^~\\&|LABSYS|NORDVIK^8200020^HER|DIPS|NORDVIK^8200001^HER|20261120140211+0100||"
         "ORU^R01^ORU_R01|" +
         id + "|P|2.5\rPID|1||P" + patient +
         "^^^NORDVIK^PI||Testesen^Ola||19520804|M\rOBR|1|P1001|F2001|NPU02319^Hemoglobin^NPU|||"
         "20261120120000\rOBX|1|NM|NPU02319^Hemoglobin^NPU||13.2|g/dL|11.7-15.3||||F\r";
}

bus::KafkaSettings kafka() {
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  return s;
}

int64_t topic_count(const std::string& topic) {
  auto n = bus::topic_message_count(kafka(), topic);
  return n ? *n : 0;
}

}  // namespace

int bench_main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_routes throughput|latency|faults SECONDS [RATE]\n");
    return 2;
  }
  const std::string mode = argv[1];
  const double secs = std::atof(argv[2]);
  const double rate = argc > 3 ? std::atof(argv[3]) : 0;
  const bool paced = mode != "throughput";
  const bool faults = mode == "faults";

  testenv::HttpReceiver http;
  testenv::MllpReceiver mllp;
  http.keep_payloads(false);
  mllp.keep_payloads(false);
  if (faults) {
    mllp.set_policy([](const std::string& s) {
      return s == kDown ? testenv::Answer::kLater : testenv::Answer::kAccept;
    });
    mllp.set_delay([](const std::string& s) { return s == kSlow ? 5000ms : 0ms; });
  }
  // A broker that kept the topics of earlier runs (tests run with BUDSTIKKE_TEST_KEEP, runs
  // that were killed) is slower for every client: session 20 found 4,313 topics on the
  // local broker, ten runs' worth. Say how many there are, so figures can be compared.
  if (auto topics = bus::list_topics(kafka()); topics) {
    std::printf("broker_topics=%zu (before this run's ~420)\n", topics->size());
    if (topics->size() > 1000)
      std::fprintf(stderr,
                   "warning: the broker holds %zu topics; figures are not comparable with a "
                   "clean broker (scripts/kafka stop; scripts/kafka reset; scripts/kafka start)\n",
                   topics->size());
  }
  testenv::TempDir tmp;
  setenv("BUDSTIKKE_RECEIVER_HTTP", http.base_url().c_str(), 1);
  setenv("BUDSTIKKE_RECEIVER_MLLP", mllp.url().c_str(), 1);
  setenv("BUDSTIKKE_OUTBOX", (tmp.path() / "outbox").c_str(), 1);
  setenv("BUDSTIKKE_RETRY_ATTEMPTS", "5", 1);
  setenv("BUDSTIKKE_RETRY_BACKOFF_MS", "200", 1);
  const std::string src = testenv::source_dir().string();
  // BENCH_SYSTEMS=FILE: another registry (it must have the systems the load goes to).
  const char* systems_file = std::getenv("BENCH_SYSTEMS");
  const std::string systems =
      systems_file && *systems_file ? std::string(systems_file) : src + "/config/systems.yaml";
  // "a: 1; b: 2" as the lines of a YAML section's body.
  auto section_keys = [](std::string_view list) {
    std::string keys;
    while (!list.empty()) {
      const auto semi = list.find(';');
      std::string_view one = list.substr(0, semi);
      while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
      if (!one.empty()) keys += "  " + std::string(one) + "\n";
      list = semi == std::string_view::npos ? std::string_view() : list.substr(semi + 1);
    }
    return keys;
  };
  // BENCH_PARTITIONS=N, BENCH_KAFKA="linger_ms: 5; ...": keys of engine.yaml's kafka section.
  std::string kafka_keys;
  if (const char* parts = std::getenv("BENCH_PARTITIONS"); parts && *parts)
    kafka_keys += "  partitions: " + std::string(parts) + "\n";
  if (const char* k = std::getenv("BENCH_KAFKA"); k && *k) kafka_keys += section_keys(k);
  // BENCH_DELIVERY="route_batch_ms: 5; ...": keys of its delivery section, after
  // BENCH_JOB_TOPICS=route|system (delivery.job_topics).
  std::string delivery;
  if (const char* jt = std::getenv("BENCH_JOB_TOPICS"); jt && *jt)
    delivery += "  job_topics: " + std::string(jt) + "\n";
  if (const char* d = std::getenv("BENCH_DELIVERY"); d && *d) delivery += section_keys(d);
  // The admin API on a free port, for the routes' transaction counts.
  testenv::EngineProcess engine(tmp.path() / "engine",
                                "routes: " + src + "/routes\nsystems: " + systems + "\n" +
                                    (delivery.empty() ? "" : "delivery:\n" + delivery) +
                                    "admin:\n  host: 127.0.0.1\n  port: 0\n  token: bench\n",
                                kafka_keys);
  int admin_port = 0;
  // The engine's /metrics text, empty when it cannot be read.
  auto metrics_text = [&] {
    const auto reply = testenv::http_request("GET", "127.0.0.1", admin_port, "/metrics", "bench");
    return reply.status == 200 ? reply.body : std::string();
  };
  if (!engine.start()) {
    std::fprintf(stderr, "engine did not start\n%s\n",
                 testenv::read_file(tmp.path() / "engine/engine-1.log").c_str());
    return 1;
  }
  admin_port = engine.admin_port();
  std::this_thread::sleep_for(3s);  // consumer groups settle

  // Paced: enough connections that each carries at most 100 msg/s. A sender waits for each
  // ACK (MLLP is one message at a time per connection), so a connection's rate is capped by
  // the ACK's latency: with the 8 connections used until session 25, 2,000 msg/s needed every
  // ACK within 4 ms, and on a loaded machine "offered 2,000" reached only 1,100-1,700.
  // BENCH_CONNS=N sets the number (paced or not).
  int conns = paced ? std::max(8, static_cast<int>(std::ceil(rate / 100.0))) : 16;
  if (const char* c = std::getenv("BENCH_CONNS"); c && std::atoi(c) > 0) conns = std::atoi(c);
  // Healthy deliveries so far: every ORU goes to the hospital system, every ADT to the 20
  // departments (18 when two are faulty) and to Kjernejournal (a topic, counted apart).
  const int healthy_departments = faults ? kDepartments - 2 : kDepartments;
  auto healthy_delivered = [&] {
    long n = http.total();
    for (const auto& [s, c] : mllp.counts())
      if (!faults || (s != kSlow && s != kDown)) n += c;
    return n;
  };
  struct Phase {
    long sent = 0, adts = 0, failed = 0;
    double ingest_secs = 0, total_secs = 0;
    long delivered = 0, expected = 0;
  };
  // One load phase: `conns` connections for `phase_secs`, then until the healthy systems
  // have every delivery of it (at most 300 s). Message ids start with `tag`.
  auto run_phase = [&](const std::string& tag, double phase_secs) {
    const long delivered_before = healthy_delivered();
    const int64_t kj_before = topic_count(engine.prefix() + "national.kjernejournal");
    std::atomic<bool> stop{false};
    std::atomic<long> sent{0}, adts{0}, failed{0};
    std::vector<std::thread> threads;
    const auto t0 = steady_clock::now();
    threads.reserve(conns);
    for (int c = 0; c < conns; ++c) {
      threads.emplace_back([&, c] {
        testenv::MllpClient client("127.0.0.1", engine.mllp_port());
        if (!client.connect()) {
          failed.fetch_add(1);
          return;
        }
        const double per_conn = paced ? rate / conns : 0;
        for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
          // Staggered: connection c sends c/conns of a period after connection 0, so the
          // load is even, not a burst of `conns` messages per period.
          if (paced)
            std::this_thread::sleep_until(
                t0 + duration<double>((static_cast<double>(i) + static_cast<double>(c) / conns) /
                                      per_conn));
          bool is_adt = false;
          const std::string m = message(tag, c, i, is_adt);
          auto ack = client.send(m, seconds(30));
          if (!ack || ack->find("|AA|") == std::string::npos) {
            failed.fetch_add(1);
            if (!client.connected() && !client.connect()) return;
            continue;
          }
          sent.fetch_add(1, std::memory_order_relaxed);
          if (is_adt) adts.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    std::this_thread::sleep_for(duration<double>(phase_secs));
    stop = true;
    for (auto& t : threads) t.join();
    Phase p;
    p.ingest_secs = duration<double>(steady_clock::now() - t0).count();
    p.sent = sent.load();
    p.adts = adts.load();
    p.failed = failed.load();
    p.expected = (p.sent - p.adts) + p.adts * healthy_departments;
    const auto drain_end = steady_clock::now() + 300s;
    while ((healthy_delivered() - delivered_before < p.expected ||
            topic_count(engine.prefix() + "national.kjernejournal") - kj_before < p.adts) &&
           steady_clock::now() < drain_end)
      std::this_thread::sleep_for(20ms);
    p.total_secs = duration<double>(steady_clock::now() - t0).count();
    p.delivered = healthy_delivered() - delivered_before;
    return p;
  };

  // Warm-up: an engine that has just started pays once for its first transactions (producer
  // ids, the first AddPartitionsToTxn of ~25 partitions per route), its consumers' first
  // fetches and the broker's JIT. That is start-up, not routing: it runs the same load for
  // BENCH_WARMUP seconds (default 3; 0 measures from the start) and is not counted.
  const char* w = std::getenv("BENCH_WARMUP");
  const double warmup_secs = w ? std::atof(w) : 3.0;
  if (warmup_secs > 0) {
    const Phase wp = run_phase("W", warmup_secs);
    std::printf("warmup: messages=%ld seconds=%.1f deliveries=%ld/%ld\n", wp.sent, wp.total_secs,
                wp.delivered, wp.expected);
  }
  const int64_t measured_from_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  // What the measured phase cost each process: the engine, the broker (when it runs on this
  // host: the process listening on the bootstrap port) and this benchmark (load and fake
  // receivers).
  const pid_t broker_pid =
      testenv::listener_pid(testenv::bootstrap_port(testenv::kafka_bootstrap()));
  const pid_t pids[3] = {engine.pid(), broker_pid, getpid()};
  int64_t cpu_before[3];
  for (int i = 0; i < 3; ++i) cpu_before[i] = pids[i] ? testenv::process_cpu_ns(pids[i]) : -1;
  const auto wall_before = steady_clock::now();
  const testenv::MachineTicks machine_before = testenv::machine_ticks();
  const std::string metrics_before = metrics_text();
  const Phase ph = run_phase("R", secs);
  const std::string metrics_after = metrics_text();
  if (const char* mo = std::getenv("BENCH_METRICS_OUT"); mo && *mo) {
    std::ofstream f(mo);
    f << metrics_before << "=====AFTER\n" << metrics_after;
    if (!f) std::fprintf(stderr, "BENCH_METRICS_OUT: cannot write %s\n", mo);
  }
  const testenv::MachineTicks machine_after = testenv::machine_ticks();
  const double wall_ns =
      static_cast<double>(duration_cast<nanoseconds>(steady_clock::now() - wall_before).count());
  double cpu_ns[3];
  for (int i = 0; i < 3; ++i) {
    const int64_t after = pids[i] ? testenv::process_cpu_ns(pids[i]) : -1;
    cpu_ns[i] = cpu_before[i] < 0 || after < 0 ? -1 : static_cast<double>(after - cpu_before[i]);
  }
  const auto delta = [&](const char* name) {
    return testenv::metric_total(metrics_after, name) - testenv::metric_total(metrics_before, name);
  };
  const double txns = delta("budstikke_route_transactions_total");
  const double route_events = delta("budstikke_route_events_total");
  const double txn_seconds = delta("budstikke_route_transaction_seconds_sum");
  const double jobs_moved = delta("budstikke_delivery_jobs_moved_total");
  const long n_adt = ph.adts;
  const long n_oru = ph.sent - n_adt;
  const long expected = ph.expected;
  const long delivered = ph.delivered;
  const double ingest_secs = ph.ingest_secs;
  const double total_secs = ph.total_secs;

  // Latency of the healthy systems' deliveries, from the tracking topic.
  std::vector<double> lat;
  // Where it goes: ingest (canonical record) -> routed (the route's transaction) -> delivered,
  // from the Kafka timestamps of the tracking records, per healthy delivery.
  std::map<std::string, int64_t> received_ts, routed_ts;
  // Per delivery: message id, outcome time, the connector's kind (mllp, http, kafka).
  struct Delivered {
    std::string id;
    int64_t ts;
    std::string kind;
    double latency;
  };
  std::vector<Delivered> delivered_ts;
  const auto mllp_counts = mllp.counts();
  std::map<int64_t, std::vector<double>> timeline;  // delivery second -> latencies
  {
    auto consumer =
        bus::Consumer::create(kafka(), "bench-" + uuid_v4(), {engine.prefix() + "tracking"});
    auto idle = steady_clock::now();
    while (consumer && steady_clock::now() - idle < 3s) {
      auto m = (*consumer)->poll(200ms);
      if (!m || !*m) continue;
      idle = steady_clock::now();
      const auto j = nlohmann::json::parse((**m).value(), nullptr, false);
      if (!j.is_object()) continue;
      const std::string state = j.value("state", "");
      const int64_t ts = (**m).timestamp_ms();
      if (state == "received") received_ts[j.value("message_id", "")] = ts;
      if (state == "routed") routed_ts[j.value("message_id", "")] = ts;
      if (state != "delivered" || !j.contains("latency_ms")) continue;
      const std::string sys = j.value("system", "");
      if (faults && (sys == kSlow || sys == kDown)) continue;
      // The measured phase only (the tracking topic has one partition: received comes first).
      const auto rec = received_ts.find(j.value("message_id", ""));
      if (rec == received_ts.end() || rec->second < measured_from_ms) continue;
      lat.push_back(j.value("latency_ms", 0.0));
      const std::string kind = mllp_counts.count(sys)                           ? "mllp"
                               : sys.find("kjernejournal") != std::string::npos ? "kafka"
                                                                                : "http";
      delivered_ts.push_back({j.value("message_id", ""), ts, kind, lat.back()});
      timeline[ts / 1000].push_back(lat.back());
    }
  }
  std::vector<double> to_routed, to_delivered;
  struct Split {
    std::vector<double> total, to_routed, to_delivered;
  };
  std::map<std::string, Split> by_kind;
  for (const auto& d : delivered_ts) {
    const auto r = routed_ts.find(d.id);
    const auto c = received_ts.find(d.id);
    if (r == routed_ts.end() || c == received_ts.end()) continue;
    to_routed.push_back(static_cast<double>(r->second - c->second));
    to_delivered.push_back(static_cast<double>(d.ts - r->second));
    Split& k = by_kind[d.kind];
    k.total.push_back(d.latency);
    k.to_routed.push_back(to_routed.back());
    k.to_delivered.push_back(to_delivered.back());
  }
  auto pct_of = [](std::vector<double>& v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
  };
  auto pct = [&](double p) { return pct_of(lat, p); };
  std::printf(
      "mode=%s connections=%d messages=%ld adt=%ld oru=%ld failed=%ld ingest_msg_per_s=%.0f "
      "routed_msg_per_s=%.0f deliveries=%ld/%ld delivered_per_s=%.0f p50_ms=%.0f p99_ms=%.0f "
      "samples=%zu dlq_down=%lld\n",
      mode.c_str(), conns, ph.sent, n_adt, n_oru, ph.failed,
      static_cast<double>(ph.sent) / ingest_secs, static_cast<double>(ph.sent) / total_secs,
      delivered, expected, delivered / total_secs, pct(0.5), pct(0.99), lat.size(),
      static_cast<long long>(topic_count(engine.prefix() + "dlq." + kDown)));
  std::printf(
      "split: received->routed p50_ms=%.0f p99_ms=%.0f, routed->delivered p50_ms=%.0f "
      "p99_ms=%.0f\n",
      pct_of(to_routed, 0.5), pct_of(to_routed, 0.99), pct_of(to_delivered, 0.5),
      pct_of(to_delivered, 0.99));
  // route_events: events the routes read (each reads the topics of its `from`); a batch that
  // produced jobs is one transaction.
  if (metrics_before.empty() || metrics_after.empty())
    std::printf("routes: the engine's /metrics could not be read\n");
  else
    std::printf(
        "routes: transactions=%.0f per_s=%.0f route_events=%.0f txn_mean_ms=%.1f jobs_moved=%.0f\n",
        txns, txns / total_secs, route_events, txns > 0 ? txn_seconds * 1e3 / txns : 0.0,
        jobs_moved);
  // cores: CPU over the phase's wall time (load, then until the last healthy delivery);
  // us_per_msg: CPU per message sent in the phase. -1: the process could not be read.
  const auto cores = [&](int i) { return cpu_ns[i] < 0 ? -1.0 : cpu_ns[i] / wall_ns; };
  const auto us_per_msg = [&](int i) {
    return cpu_ns[i] < 0 || ph.sent == 0 ? -1.0 : cpu_ns[i] / 1e3 / static_cast<double>(ph.sent);
  };
  std::printf(
      "cpu: engine_cores=%.2f broker_cores=%.2f bench_cores=%.2f engine_us_per_msg=%.0f "
      "broker_us_per_msg=%.0f bench_us_per_msg=%.0f\n",
      cores(0), cores(1), cores(2), us_per_msg(0), us_per_msg(1), us_per_msg(2));
  // The machine over the same phase: how much of it was idle, and how much the hypervisor
  // took (steal) - a slow run with steal is the host's doing, not the engine's.
  if (const int64_t all = machine_after.total - machine_before.total; all > 0)
    std::printf("machine: idle_pct=%.1f steal_pct=%.1f\n",
                100.0 * static_cast<double>(machine_after.idle - machine_before.idle) /
                    static_cast<double>(all),
                100.0 * static_cast<double>(machine_after.steal - machine_before.steal) /
                    static_cast<double>(all));
  for (auto& [kind, k] : by_kind)
    std::printf(
        "kind %s: deliveries=%zu p50_ms=%.0f p99_ms=%.0f received->routed p50_ms=%.0f "
        "p99_ms=%.0f routed->delivered p50_ms=%.0f p99_ms=%.0f\n",
        kind.c_str(), k.total.size(), pct_of(k.total, 0.5), pct_of(k.total, 0.99),
        pct_of(k.to_routed, 0.5), pct_of(k.to_routed, 0.99), pct_of(k.to_delivered, 0.5),
        pct_of(k.to_delivered, 0.99));
  // BENCH_TIMELINE=1: the healthy latency per second of the run (where the tail comes from).
  if (const char* t = std::getenv("BENCH_TIMELINE"); t && *t == '1') {
    const int64_t first = timeline.empty() ? 0 : timeline.begin()->first;
    for (auto& [sec, v] : timeline)
      std::printf("second %lld (epoch %lld): deliveries=%zu p50_ms=%.0f p99_ms=%.0f max_ms=%.0f\n",
                  static_cast<long long>(sec - first), static_cast<long long>(sec), v.size(),
                  pct_of(v, 0.5), pct_of(v, 0.99), pct_of(v, 1.0));
  }
  engine.stop(SIGTERM);
  // ~400 topics per run, deleted when `engine` ends: a broker kept for many runs would run out
  // of files.
  return delivered >= expected ? 0 : 1;
}

int main(int argc, char** argv) {
  return budstikke::testenv::run_bench(bench_main, argc, argv);
}
