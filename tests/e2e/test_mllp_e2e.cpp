// MLLP end to end on the real broker: ACK only after Kafka has the message; a NAK with ERR
// for a bad one; 10,000 messages over 8 concurrent connections with a kill -9 of the engine
// midway: the senders resend what was not ACKed, and every message is on Kafka at least once.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"
#include "adapters/mllp/mllp_client.hpp"
#include "engine/bus/bus.hpp"
#include "engine/core/crypto.hpp"
#include "engine/event/event.hpp"
#include "tests/support/engine_process.hpp"
#include "tests/support/fake_receivers.hpp"
#include "tests/support/mllp_client.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace std::chrono_literals;

namespace {

std::string adt(const std::string& control_id, int patient) {
  return "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|BUDSTIKKE|REGION|20261120101500||ADT^A01^ADT_A01|" +
         control_id + "|P|2.5\rEVN|A01|20261120101500\rPID|1||P" + std::to_string(patient) +
         "^^^NORDVIK^PI||Testesen^Ola||19520804|M\rPV1|1|I|MED^201^1\r";
}

std::map<std::string, int> control_ids_on(const std::string& topic, size_t expected,
                                          std::chrono::seconds limit) {
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  std::map<std::string, int> seen;
  auto c = bus::Consumer::create(s, "reader-" + uuid_v4(), {topic});
  if (!c) return seen;
  const auto end = std::chrono::steady_clock::now() + limit;
  auto last = std::chrono::steady_clock::now();
  size_t total = 0;
  while (std::chrono::steady_clock::now() < end) {
    auto m = (*c)->poll(200ms);
    if (!m.ok()) break;
    if (!m->has_value()) {
      if (seen.size() >= expected && std::chrono::steady_clock::now() - last > 2s) break;
      continue;
    }
    last = std::chrono::steady_clock::now();
    ++total;
    auto e = event_from_json_string((**m).value());
    if (e.ok()) ++seen[e->source.message_id];
  }
  return seen;
}

}  // namespace

TEST(MllpE2E, AckAfterKafkaNakWithReason) {
  testenv::TempDir dir;
  testenv::EngineProcess engine(dir.path());
  ASSERT_TRUE(engine.start());
  testenv::MllpClient client("127.0.0.1", engine.mllp_port());
  ASSERT_TRUE(client.connect());
  auto ack = client.send(adt("OK-1", 1), 30s);
  ASSERT_TRUE(ack.has_value());
  auto m = hl7v2::Message::parse(*ack);
  ASSERT_TRUE(std::holds_alternative<hl7v2::Message>(m));
  EXPECT_EQ(std::get<hl7v2::Message>(m).get("MSA-1"), "AA");
  EXPECT_EQ(std::get<hl7v2::Message>(m).get("MSA-2"), "OK-1");
  // The ACK came after Kafka had it: the event is there.
  auto seen = control_ids_on(engine.prefix() + "canonical.admission", 1, 60s);
  EXPECT_EQ(seen["OK-1"], 1);

  // A message without a control id: AR with an ERR segment saying why.
  auto nak = client.send("MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\rPID|1\r", 30s);
  ASSERT_TRUE(nak.has_value());
  auto n = std::get<hl7v2::Message>(hl7v2::Message::parse(*nak));
  EXPECT_EQ(n.get("MSA-1"), "AR");
  EXPECT_NE(n.get("ERR-8").value_or("").find("MSH-10"), std::string::npos);
  // Garbage in a frame: AR, and the connection stays usable.
  auto bad = client.send("this is not HL7", 30s);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(std::get<hl7v2::Message>(hl7v2::Message::parse(*bad)).get("MSA-1"), "AR");
  auto again = client.send(adt("OK-2", 2), 30s);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(std::get<hl7v2::Message>(hl7v2::Message::parse(*again)).get("MSA-1"), "AA");
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

// read_timeout_ms closes an idle connection, counted from its last message, and never one
// that keeps sending (the timer is armed once and re-armed from the last activity).
TEST(MllpE2E, IdleConnectionsCloseAndBusyOnesStay) {
  testenv::TempDir dir;
  testenv::EngineProcess engine(dir.path(), "    read_timeout_ms: 600\n");  // the mllp source's
  ASSERT_TRUE(engine.start());
  // Sends every 150 ms for 2.4 s, four times the timeout: every message answered.
  testenv::MllpClient busy("127.0.0.1", engine.mllp_port());
  ASSERT_TRUE(busy.connect());
  for (int i = 0; i < 16; ++i) {
    auto ack = busy.send(adt("BUSY-" + std::to_string(i), i), 30s);
    ASSERT_TRUE(ack.has_value()) << "message " << i << ": connection closed while in use";
    std::this_thread::sleep_for(150ms);
  }
  // One message, then quiet: the engine closes it about 600 ms after the ACK.
  testenv::MllpClient idle("127.0.0.1", engine.mllp_port());
  ASSERT_TRUE(idle.connect());
  ASSERT_TRUE(idle.send(adt("IDLE-1", 100), 30s).has_value());
  const auto acked = std::chrono::steady_clock::now();
  const int fd = idle.native_handle();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "not closed within 10 s";
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // end of stream: closed by the engine
  const auto after = std::chrono::steady_clock::now() - acked;
  EXPECT_GE(after, 500ms);
  EXPECT_LT(after, 5s);
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

// A sender that does not read its ACKs while it sends: they fill the socket's buffers (each
// ACK echoes a 100 KB control id, so 80 of them outgrow the engine's send buffer of up to
// 4 MB) and the engine's writes wait, with the frames read behind them queued, until the
// sender reads. Every ACK arrives, whole and in order. (It caught a tried-and-dropped variant
// that sent each ACK at once and mishandled a short send.)
TEST(MllpE2E, AcksToASenderThatDoesNotReadArriveWholeAndInOrder) {
  testenv::TempDir dir;
  testenv::EngineProcess engine(dir.path());
  ASSERT_TRUE(engine.start());
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const int small = 2048;  // a small receive window, so the engine's send buffer fills
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(engine.mllp_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  constexpr int kMessages = 80;
  const std::string pad(100'000, 'x');
  auto id = [&](int i) { return "PIPE-" + std::to_string(i) + "-" + pad; };
  std::string all;
  for (int i = 0; i < kMessages; ++i) all += mllp::frame(adt(id(i), i));
  for (size_t off = 0; off < all.size();) {
    const ssize_t n = ::send(fd, all.data() + off, all.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
  // Wait until the engine has ACKs queued that the window cannot take, then read them all.
  std::this_thread::sleep_for(3s);
  mllp::Deframer deframer;
  std::vector<std::string> acks;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  char buf[65536];
  while (acks.size() < kMessages && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "closed after " << acks.size() << " ACKs";
    deframer.feed(std::string_view(buf, static_cast<size_t>(n)), acks);
  }
  ::close(fd);
  ASSERT_EQ(acks.size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    auto m = hl7v2::Message::parse(acks[static_cast<size_t>(i)]);
    ASSERT_TRUE(std::holds_alternative<hl7v2::Message>(m)) << "ACK " << i;
    EXPECT_EQ(std::get<hl7v2::Message>(m).get("MSA-1"), "AA") << "ACK " << i;
    EXPECT_EQ(std::get<hl7v2::Message>(m).get("MSA-2"), id(i)) << "ACK " << i;
  }
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

TEST(MllpE2E, TenThousandOverEightConnectionsWithKillDashNine) {
  constexpr int kConnections = 8;
  constexpr int kPerConnection = 1250;
  testenv::TempDir dir;
  testenv::EngineProcess engine(dir.path());
  ASSERT_TRUE(engine.start());
  std::atomic<int> acked{0};
  std::atomic<int> resent{0};
  std::atomic<int> naks{0};
  std::atomic<bool> give_up{false};
  std::vector<std::thread> senders;
  senders.reserve(kConnections);
  for (int c = 0; c < kConnections; ++c) {
    senders.emplace_back([&, c] {
      testenv::MllpClient client("127.0.0.1", engine.mllp_port());
      for (int i = 0; i < kPerConnection && !give_up; ++i) {
        const std::string id = "C" + std::to_string(c) + "-" + std::to_string(i);
        const std::string msg = adt(id, c * kPerConnection + i);
        bool done = false;
        bool first = true;
        while (!done && !give_up) {
          if (!client.connected() && !client.connect()) {
            std::this_thread::sleep_for(100ms);
            continue;
          }
          if (!first) resent.fetch_add(1);
          first = false;
          auto ack = client.send(msg, 20s);
          if (!ack) continue;  // connection lost: the message was not ACKed, send it again
          auto parsed = hl7v2::Message::parse(*ack);
          if (std::holds_alternative<hl7v2::Message>(parsed) &&
              std::get<hl7v2::Message>(parsed).get("MSA-1") == "AA" &&
              std::get<hl7v2::Message>(parsed).get("MSA-2") == id) {
            done = true;
            acked.fetch_add(1);
          } else {
            naks.fetch_add(1);  // AE: not stored; resend
          }
        }
      }
    });
  }
  // Kill -9 the engine while the senders are in the middle.
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  while (acked.load() < 3000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  const int before = acked.load();
  EXPECT_EQ(engine.stop(SIGKILL), -SIGKILL);
  ASSERT_TRUE(engine.start());
  const auto end = std::chrono::steady_clock::now() + 600s;
  while (acked.load() < kConnections * kPerConnection && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(50ms);
  give_up = true;
  for (auto& t : senders) t.join();
  ASSERT_EQ(acked.load(), kConnections * kPerConnection);

  const auto seen = control_ids_on(engine.prefix() + "canonical.admission",
                                   static_cast<size_t>(kConnections) * kPerConnection, 300s);
  size_t lost = 0;
  size_t duplicates = 0;
  for (int c = 0; c < kConnections; ++c)
    for (int i = 0; i < kPerConnection; ++i) {
      const auto it = seen.find("C" + std::to_string(c) + "-" + std::to_string(i));
      if (it == seen.end())
        ++lost;
      else
        duplicates += static_cast<size_t>(it->second - 1);
    }
  std::printf(
      "mllp: %d messages over %d connections, kill -9 after %d ACKs; resent %d, AE %d; "
      "on Kafka: %zu distinct, lost %zu, duplicates %zu\n",
      kConnections * kPerConnection, kConnections, before, resent.load(), naks.load(), seen.size(),
      lost, duplicates);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

// MLLP over TLS with mutual TLS on the real broker: a sender with a certificate from the
// configured CA gets its ACK after Kafka has the message; one without a certificate, or one
// that does not trust the engine's certificate, gets no connection (and nothing is stored).
TEST(MllpE2E, TlsListenerWithClientCertificates) {
  testenv::TempDir tmp;
  const auto pki = testenv::make_test_pki(tmp.path() / "pki");
  ASSERT_TRUE(pki) << "openssl could not make the test certificates";
  // Appended to the generated engine.yaml, whose last key is the sources list; the port is
  // picked with the engine's others (and again if it is taken when the engine starts).
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      "  - name: mllps\n    type: mllp\n    port: {extra_port}\n    tls_cert_file: " +
          pki->server_cert + "\n    tls_key_file: " + pki->server_key +
          "\n    tls_ca_file: " + pki->ca + "\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const int tls_port = engine.extra_port();
  auto client = [&](bool with_cert, const std::string& ca) {
    adapters::MllpClientSettings s;
    s.port = tls_port;
    s.tls = true;
    s.ca_file = ca;
    if (with_cert) {
      s.cert_file = pki->client_cert;
      s.key_file = pki->client_key;
    }
    s.ack_timeout = 10s;
    return std::make_unique<adapters::MllpClient>(s);
  };
  runtime::DeliveryJob job;
  job.payload = adt("TLS-0001", 1);
  const auto ok = client(true, pki->ca)->send(job);
  EXPECT_TRUE(ok.is_ok()) << ok.reason;
  EXPECT_NE(ok.response.find("MSA|AA|TLS-0001"), std::string::npos) << ok.response;
  job.payload = adt("TLS-0002", 2);
  const auto no_cert = client(false, pki->ca)->send(job);
  EXPECT_FALSE(no_cert.is_ok());
  job.payload = adt("TLS-0003", 3);
  const auto untrusted = client(true, pki->other_ca)->send(job);
  EXPECT_FALSE(untrusted.is_ok());
  EXPECT_NE(untrusted.reason.find("TLS handshake"), std::string::npos) << untrusted.reason;
  const auto on_kafka = control_ids_on(engine.prefix() + "canonical.admission", 1, 15s);
  EXPECT_EQ(on_kafka.size(), 1u);
  EXPECT_EQ(on_kafka.count("TLS-0001"), 1u);
  std::printf(
      "mllp tls: certified sender ACKed (%s); without a certificate: %s; untrusted "
      "server: %s\n",
      ok.is_ok() ? "AA" : "no", no_cert.reason.c_str(), untrusted.reason.c_str());
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}
