// Test helper: consumes TOPIC in GROUP through the bus and "processes" each record by
// appending its key to OUT (one line per record, written with write(2) before the offset is
// stored). Commits every 500 records and every 100 ms. Exits when EXPECTED distinct keys
// have been seen in OUT across runs, or runs until killed.
//
// usage: bus_consumer_proc BOOTSTRAP TOPIC GROUP OUT EXPECTED [MAX_PER_SECOND]
// MAX_PER_SECOND throttles processing so a test can kill the process mid-stream.

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <unordered_set>

#include "engine/bus/bus.hpp"

using namespace budstikke;

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::fprintf(stderr,
                 "usage: bus_consumer_proc BOOTSTRAP TOPIC GROUP OUT EXPECTED [MAX_PER_SECOND]\n");
    return 2;
  }
  const std::string out_path = argv[4];
  const size_t expected = std::stoul(argv[5]);
  const double max_rate = argc == 7 ? std::stod(argv[6]) : 0.0;
  const auto started = std::chrono::steady_clock::now();
  size_t processed = 0;
  std::unordered_set<std::string> seen;
  {
    std::ifstream in(out_path);
    for (std::string line; std::getline(in, line);) seen.insert(line);
  }
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = argv[1];
  auto c = bus::Consumer::create(s, argv[3], {argv[2]});
  if (!c) {
    std::fprintf(stderr, "%s\n", c.error().message.c_str());
    return 1;
  }
  const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return 1;
  auto last_commit = std::chrono::steady_clock::now();
  size_t since_commit = 0;
  std::string buf;
  while (seen.size() < expected) {
    auto m = (*c)->poll(bus::Millis(100));
    if (!m) {
      std::fprintf(stderr, "%s\n", m.error().message.c_str());
      return 1;
    }
    if (m->has_value()) {
      const auto& msg = **m;
      buf.assign(msg.key());
      buf.push_back('\n');
      if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) return 1;
      seen.insert(std::string(msg.key()));
      (void)(*c)->store(msg);
      ++since_commit;
      ++processed;
      if (max_rate > 0) {
        const auto due = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                       std::chrono::duration<double>(processed / max_rate));
        std::this_thread::sleep_until(due);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (since_commit >= 500 || (since_commit > 0 && now - last_commit > bus::Millis(100))) {
      if (auto st = (*c)->commit(true); !st)
        std::fprintf(stderr, "commit: %s\n", st.error().message.c_str());
      since_commit = 0;
      last_commit = now;
    }
  }
  ::close(fd);
  (void)(*c)->close();
  return 0;
}
