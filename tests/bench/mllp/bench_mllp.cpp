// MLLP ingest load: CONNECTIONS senders, each sending ~1 KB ADT^A01 messages one after
// another and waiting for each ACK (which the engine sends only after Kafka has the
// message). Prints messages/s and the ACK latency percentiles.
// All connections are driven by one thread (epoll, non-blocking sockets), so the load
// generator takes as little as it can of the cores it shares with the engine and the broker;
// each connection still has one message outstanding at a time, as a sender waiting for its
// ACK does.
// usage: bench_mllp HOST PORT CONNECTIONS SECONDS

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "adapters/mllp/framer.hpp"

using namespace std::chrono;

namespace {

std::string adt(int conn, long i) {
  std::string id = "B" + std::to_string(conn) + "-" + std::to_string(i);
  std::string m =
      "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|BUDSTIKKE|REGION|20261120101500+0100||ADT^A01^ADT_A01|" +
      id + "|P|2.5\rEVN|A01|20261120101500+0100\rPID|1||P" +
      std::to_string(int64_t{conn} * 1000000 + i) +
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

struct Conn {
  int fd = -1;
  int id = 0;
  long next = 0;
  std::string out;  // framed message being sent
  size_t sent = 0;
  budstikke::mllp::Deframer in;
  steady_clock::time_point started;
};

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bench_mllp HOST PORT CONNECTIONS SECONDS\n");
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::atoi(argv[2]);
  const int conns = std::atoi(argv[3]);
  const double secs = std::atof(argv[4]);
  long acked = 0;
  long failed = 0;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(1 << 20);
  const int ep = epoll_create1(0);
  std::vector<Conn> cs(static_cast<size_t>(conns));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "bench_mllp: %s is not an IPv4 address\n", host.c_str());
    return 2;
  }
  auto start_message = [&](Conn& c) {
    c.out = budstikke::mllp::frame(adt(c.id, c.next++));
    c.sent = 0;
    c.started = steady_clock::now();
  };
  // Sends what the socket takes; false on a broken connection.
  auto pump = [&](Conn& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
        continue;
      }
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
  };
  // Writable events only while a message is partly sent.
  auto watch = [&](Conn& c) {
    epoll_event ev{};
    ev.events = EPOLLIN | (c.sent < c.out.size() ? EPOLLOUT : 0u);
    ev.data.u32 = static_cast<uint32_t>(c.id);
    ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  };
  auto send_next = [&](Conn& c) {
    start_message(c);
    if (!pump(c)) return false;
    if (c.sent < c.out.size()) watch(c);
    return true;
  };
  int open = 0;
  for (int i = 0; i < conns; ++i) {
    Conn& c = cs[static_cast<size_t>(i)];
    c.id = i;
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::fprintf(stderr, "bench_mllp: connect to %s:%d failed\n", host.c_str(), port);
      ++failed;
      ::close(c.fd);
      c.fd = -1;
      continue;
    }
    ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    ++open;
  }
  const auto t0 = steady_clock::now();
  const auto deadline = t0 + duration_cast<steady_clock::duration>(duration<double>(secs));
  for (auto& c : cs)
    if (c.fd >= 0 && !send_next(c)) ++failed;
  std::vector<epoll_event> events(static_cast<size_t>(std::max(conns, 1)));
  std::vector<std::string> frames;
  char buf[64 * 1024];
  bool stopping = false;
  int outstanding = open;
  // A connection is done: after its last ACK, or broken (counted as a failure).
  auto retire = [&](Conn& c, bool broken) {
    failed += broken ? 1 : 0;
    --outstanding;
    ::close(c.fd);
    c.fd = -1;
  };
  while (outstanding > 0) {
    const auto now = steady_clock::now();
    if (!stopping && now >= deadline) stopping = true;
    // After the deadline, wait (up to 30 s) for the ACKs still outstanding.
    if (stopping && now >= deadline + seconds(30)) break;
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      Conn& c = cs[events[static_cast<size_t>(e)].data.u32];
      if (c.fd < 0) continue;
      if (c.sent < c.out.size()) {
        if (!pump(c)) {
          retire(c, true);
          continue;
        }
        if (c.sent == c.out.size()) watch(c);
      }
      const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        retire(c, true);
        continue;
      }
      if (r < 0) continue;
      frames.clear();
      c.in.feed(std::string_view(buf, static_cast<size_t>(r)), frames);
      for (const auto& ack : frames) {
        if (ack.find("MSA|AA|") == std::string::npos) {
          ++failed;
        } else {
          latencies_ms.push_back(
              duration<double, std::milli>(steady_clock::now() - c.started).count());
          ++acked;
        }
        if (stopping || !send_next(c)) {
          retire(c, !stopping);
          break;
        }
      }
    }
  }
  const double elapsed = duration<double>(steady_clock::now() - t0).count();
  for (auto& c : cs)
    if (c.fd >= 0) ::close(c.fd);
  ::close(ep);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    return latencies_ms.empty() ? 0.0
                                : latencies_ms[static_cast<size_t>(p * (latencies_ms.size() - 1))];
  };
  std::printf(
      "connections=%d messages=%ld failed=%ld seconds=%.2f msg_per_s=%.0f p50_ms=%.2f "
      "p99_ms=%.2f\n",
      conns, acked, failed + outstanding, elapsed, acked / elapsed, pct(0.5), pct(0.99));
  return failed + outstanding == 0 ? 0 : 1;
}
