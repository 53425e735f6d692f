// MLLP ingest load: CONNECTIONS senders, each sending ~1 KB ADT^A01 messages one after
// another and waiting for each ACK (which the engine sends only after Kafka has the
// message). Prints messages/s and the ACK latency percentiles.
// usage: bench_mllp HOST PORT CONNECTIONS SECONDS

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/mllp_client.hpp"

using namespace std::chrono;

namespace {

std::string adt(int conn, long i) {
  std::string id = "B" + std::to_string(conn) + "-" + std::to_string(i);
  std::string m =
      "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|BUDSTIKKE|REGION|20261120101500+0100||ADT^A01^ADT_A01|" +
      id + "|P|2.5\rEVN|A01|20261120101500+0100\rPID|1||P" + std::to_string(conn * 1000000 + i) +
      "^^^NORDVIK^PI||Testesen^Ola^Benchmark||19520804|M|||Fjordveien " + std::to_string(i % 500) +
      "^^Fjordbyen^^9990^NOR||||||||||||||||||||\rPV1|1|I|MED^201^1^NORDVIK||||8100011^Lindqvist^"
      "Mari"
      "|||MED|||||||||V" +
      std::to_string(i) + "\r";
  m += "NK1|1|Testesen^Kari|SPO^Spouse|Fjordveien 1^^Fjordbyen^^9990^NOR|+4799999999\r";
  m += "AL1|1|DA|Penicillin^Penicillin allergy|SV|Rash\r";
  while (m.size() < 1000)
    m += "NTE|" + std::to_string(m.size()) +
         "||Benchmark padding text to reach about one kilobyte\r";
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bench_mllp HOST PORT CONNECTIONS SECONDS\n");
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::atoi(argv[2]);
  const int conns = std::atoi(argv[3]);
  const double secs = std::atof(argv[4]);
  std::atomic<bool> stop{false};
  std::atomic<long> acked{0};
  std::atomic<long> failed{0};
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::vector<std::thread> threads;
  const auto t0 = steady_clock::now();
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      budstikke::testenv::MllpClient client(host, port);
      if (!client.connect()) {
        failed.fetch_add(1);
        return;
      }
      std::vector<double> local;
      for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const std::string m = adt(c, i);
        const auto s = steady_clock::now();
        auto ack = client.send(m, seconds(30));
        if (!ack || ack->find("MSA|AA|") == std::string::npos) {
          failed.fetch_add(1);
          if (!client.connected() && !client.connect()) return;
          continue;
        }
        local.push_back(duration<double, std::milli>(steady_clock::now() - s).count());
        acked.fetch_add(1, std::memory_order_relaxed);
      }
      const std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), local.begin(), local.end());
    });
  }
  std::this_thread::sleep_for(duration<double>(secs));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = duration<double>(steady_clock::now() - t0).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    return latencies_ms.empty() ? 0.0
                                : latencies_ms[static_cast<size_t>(p * (latencies_ms.size() - 1))];
  };
  std::printf(
      "connections=%d messages=%ld failed=%ld seconds=%.2f msg_per_s=%.0f p50_ms=%.2f "
      "p99_ms=%.2f\n",
      conns, acked.load(), failed.load(), elapsed, acked.load() / elapsed, pct(0.5), pct(0.99));
  return failed.load() == 0 ? 0 : 1;
}
