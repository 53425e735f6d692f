// The floor under the MLLP ingest figure: the least an MLLP-to-Kafka relay can spend on this
// machine with the same broker and the same delivery guarantee as the engine, so that the
// engine's figure can be read against what the machine allows at all.
//
// It reads MLLP frames, produces each frame's bytes as they are (no parsing, no canonical
// event, no JSON) with the engine's producer guarantees (idempotent, acks=all, the same
// linger), optionally a second small record per message (the engine writes the event and its
// tracking record), and writes a fixed ACK carrying MSH-10 once Kafka has confirmed every
// record of the message. One thread does all of it: epoll for the sockets, and librdkafka's
// main queue signals an eventfd in the same epoll set, so delivery reports are served without
// a hand-off between threads (librdkafka's own broker threads remain, as in any client).
// MODE none writes the ACK at once: the loopback sockets alone, no Kafka.
//
// Not a product: no validation, no rejection, no tracking; it serves bench_mllp and nothing
// else (one message in flight per connection). It runs until SIGTERM/SIGINT and then deletes
// nothing: the bench script drops its topics.
//
// usage: bench_mllp_floor BOOTSTRAP PORT MODE [records=2] [partitions=4] [linger=1] [ack=all]
//                         [producers=1] [prefix=floor.]
//   MODE       kafka | none
//   records    1 or 2 per message; the second goes to a topic of one partition, as the
//              engine's tracking record does
//   partitions of the message topic (the engine's kafka.partitions)
//   linger     the producer's linger.ms (the engine's kafka.linger_ms)
//   ack        all: ACK when every record of the message is confirmed (as the engine does);
//              first: when the message record is (the second is confirmed in its own time)
//   producers  2: the second record through a producer of its own (its own connection and
//              requests in flight)

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/mllp/framer.hpp"
#include "engine/bus/bus.hpp"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

struct Conn {
  int fd = -1;
  uint64_t generation = 0;  // a reused slot's old reports are dropped
  budstikke::mllp::Deframer in;
  std::string out;  // ACK bytes the socket has not taken yet
};

// One message's records still outstanding at Kafka.
struct Pending {
  size_t conn = 0;
  uint64_t generation = 0;
  int outstanding = 0;
  bool failed = false;
  std::string ack;
};

std::vector<std::unique_ptr<Conn>> g_conns;
int g_epoll = -1;
long g_acked = 0, g_nacked = 0, g_unawaited_failed = 0;
std::vector<rd_kafka_t*> g_producers;

// MSH-10 of an HL7 v2 message: the tenth field, counting MSH-1 (the separator) as the first.
std::string_view control_id(std::string_view m) {
  if (m.size() < 4) return {};
  const char sep = m[3];
  size_t pos = 3;
  for (int field = 1; field < 9; ++field) {
    pos = m.find(sep, pos + 1);
    if (pos == std::string_view::npos) return {};
  }
  const size_t end = m.find_first_of("\r\n", pos + 1);
  std::string_view rest = m.substr(pos + 1, end == std::string_view::npos ? m.npos : end - pos - 1);
  const size_t next = rest.find(sep);
  return next == std::string_view::npos ? rest : rest.substr(0, next);
}

// The positive ACK; a failed delivery turns its MSA-1 into AE.
std::string ack_for(std::string_view msg) {
  const std::string_view id = control_id(msg);
  std::string body = "MSH|^~\\&|FLOOR|BENCH|||20260101000000||ACK|";
  body += id;
  body += "|P|2.5\rMSA|AA|";
  body += id;
  body += '\r';
  return budstikke::mllp::frame(body);
}

void watch(Conn& c, size_t index) {
  epoll_event ev{};
  ev.events = EPOLLIN | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
  ev.data.u64 = index;
  ::epoll_ctl(g_epoll, EPOLL_CTL_MOD, c.fd, &ev);
}

void close_conn(size_t index) {
  Conn& c = *g_conns[index];
  if (c.fd < 0) return;
  ::epoll_ctl(g_epoll, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  ++c.generation;
  c.out.clear();
  c.in.reset();
}

// Writes what the socket takes now; the rest waits for EPOLLOUT.
void send_ack(size_t index, std::string_view ack) {
  Conn& c = *g_conns[index];
  if (c.fd < 0) return;
  const bool was_empty = c.out.empty();
  c.out.append(ack);
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_conn(index);
    return;
  }
  if (was_empty != c.out.empty()) watch(c, index);
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* p = static_cast<Pending*>(m->_private);
  if (!p) {  // a record the ACK does not wait for (ack=first)
    if (m->err) ++g_unawaited_failed;
    return;
  }
  if (m->err) p->failed = true;
  if (--p->outstanding > 0) return;
  Conn& c = *g_conns[p->conn];
  if (c.generation == p->generation) {
    if (p->failed) {
      ++g_nacked;
      p->ack.replace(p->ack.find("MSA|AA|"), 7, "MSA|AE|");
    } else {
      ++g_acked;
    }
    send_ack(p->conn, p->ack);
  }
  delete p;
}

// One record, copied, with the message's Pending as its opaque.
rd_kafka_resp_err_t produce(rd_kafka_t* rk, const std::string& topic, std::string_view key,
                            std::string_view value, Pending* p) {
  rd_kafka_vu_t vu[5];
  vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vu[0].u.cstr = topic.c_str();
  vu[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vu[1].u.i = RD_KAFKA_MSG_F_COPY;
  vu[2].vtype = RD_KAFKA_VTYPE_KEY;
  vu[2].u.mem.ptr = const_cast<char*>(key.data());
  vu[2].u.mem.size = key.size();
  vu[3].vtype = RD_KAFKA_VTYPE_VALUE;
  vu[3].u.mem.ptr = const_cast<char*>(value.data());
  vu[3].u.mem.size = value.size();
  vu[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vu[4].u.ptr = p;
  rd_kafka_error_t* e = rd_kafka_produceva(rk, vu, 5);
  if (!e) return RD_KAFKA_RESP_ERR_NO_ERROR;
  const rd_kafka_resp_err_t code = rd_kafka_error_code(e);
  rd_kafka_error_destroy(e);
  return code;
}

// A producer with the engine's guarantees whose delivery reports signal `event_fd`.
rd_kafka_t* new_producer(const std::string& bootstrap, const std::string& linger, int event_fd) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"bootstrap.servers", bootstrap},
                                                        {"enable.idempotence", "true"},
                                                        {"acks", "all"},
                                                        {"linger.ms", linger},
                                                        {"compression.codec", "none"}}) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "bench_mllp_floor: %s\n", err);
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "bench_mllp_floor: %s\n", err);
    return nullptr;
  }
  // Delivery reports land on the main queue; it writes to the eventfd when it becomes
  // non-empty, so the relay's one epoll loop serves them.
  rd_kafka_queue_t* q = rd_kafka_queue_get_main(rk);
  static const uint64_t kOne = 1;
  rd_kafka_queue_io_event_enable(q, event_fd, &kOne, sizeof kOne);
  rd_kafka_queue_destroy(q);
  return rk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || (std::string_view(argv[3]) != "kafka" && std::string_view(argv[3]) != "none")) {
    std::fprintf(stderr,
                 "usage: bench_mllp_floor BOOTSTRAP PORT kafka|none [records=2] [partitions=4] "
                 "[linger=1] [ack=all|first] [producers=1|2] [prefix=floor.]\n");
    return 2;
  }
  const std::string bootstrap = argv[1];
  const int port = std::atoi(argv[2]);
  const bool use_kafka = std::string_view(argv[3]) == "kafka";
  std::map<std::string, std::string> opt{{"records", "2"},   {"partitions", "4"},
                                         {"linger", "1"},    {"ack", "all"},
                                         {"producers", "1"}, {"prefix", "floor."}};
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    if (eq == std::string::npos || !opt.count(a.substr(0, eq))) {
      std::fprintf(stderr, "bench_mllp_floor: unknown option '%s'\n", a.c_str());
      return 2;
    }
    opt[a.substr(0, eq)] = a.substr(eq + 1);
  }
  const int records = std::atoi(opt["records"].c_str());
  const int partitions = std::atoi(opt["partitions"].c_str());
  const std::string linger = opt["linger"];
  const bool ack_all = opt["ack"] == "all";
  const int producers = std::atoi(opt["producers"].c_str());
  const std::string prefix = opt["prefix"];
  if (records < 1 || records > 2 || partitions < 1 || producers < 1 || producers > 2 ||
      (opt["ack"] != "all" && opt["ack"] != "first")) {
    std::fprintf(stderr,
                 "bench_mllp_floor: records is 1 or 2, partitions at least 1, ack all or first, "
                 "producers 1 or 2\n");
    return 2;
  }
  const std::string topic = prefix + "messages";
  const std::string second = prefix + "tracking";

  (void)std::signal(SIGTERM, on_signal);
  (void)std::signal(SIGINT, on_signal);
  (void)std::signal(SIGPIPE, SIG_IGN);
  g_epoll = ::epoll_create1(0);

  int kafka_fd = -1;
  if (use_kafka) {
    budstikke::bus::KafkaSettings k;
    k.properties["bootstrap.servers"] = bootstrap;
    if (auto st =
            budstikke::bus::ensure_topics(k, {{topic, partitions, 1, {}}, {second, 1, 1, {}}});
        !st) {
      std::fprintf(stderr, "bench_mllp_floor: %s\n", st.error().message.c_str());
      return 1;
    }
    kafka_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    for (int i = 0; i < producers; ++i) {
      rd_kafka_t* h = new_producer(bootstrap, linger, kafka_fd);
      if (!h) return 1;
      g_producers.push_back(h);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX;
    ::epoll_ctl(g_epoll, EPOLL_CTL_ADD, kafka_fd, &ev);
  }

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int yes = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 256)) {
    std::fprintf(stderr, "bench_mllp_floor: cannot listen on 127.0.0.1:%d: %s\n", port,
                 std::strerror(errno));
    return 1;
  }
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.u64 = UINT64_MAX - 1;
  ::epoll_ctl(g_epoll, EPOLL_CTL_ADD, lfd, &lev);
  std::printf(
      "listening on 127.0.0.1:%d mode=%s records=%d partitions=%d linger_ms=%s ack=%s "
      "producers=%d\n",
      port, use_kafka ? "kafka" : "none", records, partitions, linger.c_str(), opt["ack"].c_str(),
      producers);
  std::fflush(stdout);

  std::vector<epoll_event> events(256);
  std::vector<std::string> frames;
  std::string tracking(200, 't');  // a tracking record's size
  char buf[64 * 1024];
  long produced_keys = 0;
  while (!g_stop) {
    const int n = ::epoll_wait(g_epoll, events.data(), static_cast<int>(events.size()), 200);
    for (int e = 0; e < n; ++e) {
      const uint64_t tag = events[static_cast<size_t>(e)].data.u64;
      if (tag == UINT64_MAX) {
        uint64_t v;
        while (::read(kafka_fd, &v, sizeof v) > 0) {
        }
        for (rd_kafka_t* h : g_producers) rd_kafka_poll(h, 0);
        continue;
      }
      if (tag == UINT64_MAX - 1) {
        for (;;) {
          const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
          if (fd < 0) break;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
          size_t index = 0;
          while (index < g_conns.size() && g_conns[index]->fd >= 0) ++index;
          if (index == g_conns.size()) g_conns.push_back(std::make_unique<Conn>());
          g_conns[index]->fd = fd;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = index;
          ::epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      const size_t index = tag;
      Conn& c = *g_conns[index];
      if (c.fd < 0) continue;
      if (events[static_cast<size_t>(e)].events & EPOLLOUT) send_ack(index, {});
      if (c.fd < 0 || !(events[static_cast<size_t>(e)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        continue;
      const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        close_conn(index);
        continue;
      }
      if (r < 0) continue;
      frames.clear();
      c.in.feed(std::string_view(buf, static_cast<size_t>(r)), frames);
      for (auto& f : frames) {
        if (!use_kafka) {
          ++g_acked;
          send_ack(index, ack_for(f));
          continue;
        }
        auto* p = new Pending{index, c.generation, ack_all ? records : 1, false, ack_for(f)};
        const std::string key = "k" + std::to_string(++produced_keys);
        rd_kafka_resp_err_t err = produce(g_producers.front(), topic, key, f, p);
        if (!err && records == 2)
          err = produce(g_producers.back(), second, key, tracking, ack_all ? p : nullptr);
        if (err) {
          std::fprintf(stderr, "bench_mllp_floor: produce: %s\n", rd_kafka_err2str(err));
          return 1;
        }
      }
    }
  }
  for (rd_kafka_t* h : g_producers) {
    rd_kafka_flush(h, 10000);
    rd_kafka_destroy(h);
  }
  std::printf("acked=%ld nacked=%ld unawaited_failed=%ld\n", g_acked, g_nacked, g_unawaited_failed);
  return 0;
}
