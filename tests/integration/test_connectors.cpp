// One conformance suite every delivery connector passes: http, mllp, file and kafka, each
// created by the engine's own factories from a registry entry, against a real receiver
// (servers on 127.0.0.1 port 0, a directory, a topic on the test broker).
//
//   Delivers          every ok means the receiver has the bytes and the idempotency key
//   OpenClose         a connector can be made and dropped with or without having sent
//   ReceiverSaysLater a "try later" answer is retriable, and the next send goes through
//   ReceiverRejects   a "never" answer is permanent
//   Reconnects        after the receiver drops its connections, sending goes on
//   ReceiverDown      an unreachable receiver is retriable; when it is back, sends succeed
//
// Where a connector's receiver has no such answer (a directory never says "never"; the test
// broker is shared and is not taken down), the case says so and is skipped.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "engine/bus/bus.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/crypto.hpp"
#include "engine/delivery/sinks.hpp"
#include "engine/registry/registry.hpp"
#include "tests/support/fake_receivers.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace std::chrono_literals;

namespace {

using testenv::Answer;
using testenv::Received;
using testenv::Receiver;

class FileReceiver final : public Receiver {
 public:
  FileReceiver() : dir_(tmp_.path() / "outbox") {}
  std::string url() override { return "file://" + dir_.string(); }
  bool can_reject() const override { return false; }  // a directory never says "never"
  // "Later": the directory cannot be made (a file stands in its way) for one send.
  void answer_next(Answer a) override {
    if (a != Answer::kLater) return;
    std::filesystem::remove_all(dir_);
    std::ofstream(dir_) << "in the way";
    blocked_ = true;
  }
  std::vector<Received> received() override {
    std::vector<Received> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.')
        out.push_back({"conformance", e.path().stem().string(), testenv::read_file(e.path())});
    return out;
  }
  void go_down() override { answer_next(Answer::kLater); }
  void come_back() override { unblock(); }
  void unblock() {
    if (!blocked_) return;
    std::filesystem::remove(dir_);
    blocked_ = false;
  }
  bool blocked() const { return blocked_; }

 private:
  testenv::TempDir tmp_;
  std::filesystem::path dir_;
  bool blocked_ = false;
};

class KafkaReceiver final : public Receiver {
 public:
  KafkaReceiver() : topic_("conformance." + uuid_v4()) {
    settings_.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    // Records over 2,000 bytes are refused by the topic: the "never" answer.
    (void)bus::ensure_topics(settings_, {{topic_, 1, 1, {{"max.message.bytes", "2000"}}}});
  }
  ~KafkaReceiver() override { (void)bus::delete_topics(settings_, {topic_}); }
  std::string url() override { return "kafka:" + topic_; }
  bool can_go_down() const override { return false; }  // the test broker is shared
  void answer_next(Answer a) override { oversize_ = a == Answer::kReject; }
  bool oversize() const { return oversize_; }
  std::vector<Received> received() override {
    std::vector<Received> out;
    auto c = bus::Consumer::create(settings_, "conformance-" + uuid_v4(), {topic_});
    if (!c) return out;
    const auto end = std::chrono::steady_clock::now() + 10s;
    auto idle = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < end) {
      auto m = (*c)->poll(100ms);
      if (!m || !*m) {
        if (std::chrono::steady_clock::now() - idle > 1500ms) break;
        continue;
      }
      idle = std::chrono::steady_clock::now();
      out.push_back({"conformance", (**m).header("bs-idempotency-key").value_or(""),
                     std::string((**m).value())});
    }
    return out;
  }

 private:
  bus::KafkaSettings settings_;
  std::string topic_;
  bool oversize_ = false;
};

// One throwaway PKI for the TLS receivers of this suite.
const testenv::TestPki& pki() {
  static testenv::TempDir dir;
  static const testenv::TestPki kPki = [] {
    auto made = testenv::make_test_pki(dir.path() / "pki");
    if (!made) throw std::runtime_error("openssl could not make the test certificates");
    return *made;
  }();
  return kPki;
}

// A TLS receiver with the suite's PKI; the connector presents the client certificate
// (mutual TLS) and trusts only the test CA.
template <class Base>
class TlsConformance final : public Base {
 public:
  TlsConformance() : Base(pki()) {}
  std::string connector_extra() const override {
    const auto& p = pki();
    return "      tls:\n        ca_file: " + p.ca + "\n        cert_file: " + p.client_cert +
           "\n        key_file: " + p.client_key + "\n";
  }
};
using HttpsConformance = TlsConformance<testenv::HttpsReceiver>;
using MllpsConformance = TlsConformance<testenv::MllpsReceiver>;

struct Connector {
  std::string name;
  std::function<std::unique_ptr<Receiver>()> make;
};

// Test names and failure messages show the connector's name, not its bytes.
// NOLINTNEXTLINE(readability-identifier-naming): the name GoogleTest looks for
void PrintTo(const Connector& c, std::ostream* os) {
  *os << c.name;
}

class Conformance : public ::testing::TestWithParam<Connector> {
 protected:
  void SetUp() override {
    receiver_ = GetParam().make();
    config::Diagnostics d;
    registry_ = registry::Registry::parse(
        "systems:\n  - id: conformance\n    name: Conformance\n    connector:\n      url: \"" +
            receiver_->url() + "\"\n      timeout_ms: 2000\n      connect_timeout_ms: 1000\n" +
            receiver_->connector_extra(),
        "conformance.yaml", d);
    ASSERT_FALSE(d.has_errors()) << d.format_all();
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    auto p = bus::Producer::create(ks);
    ASSERT_TRUE(p.ok());
    producer_ = std::move(*p);
    delivery::add_builtin_sinks(factories_, *producer_, "");
    cli::add_connector_sinks(factories_);
  }
  std::unique_ptr<runtime::Sink> sink() {
    const auto& sys = *registry_->find("conformance");
    auto s = (*factories_.find(sys.connector.type))(sys);
    EXPECT_TRUE(s.ok());
    return s ? std::move(*s) : nullptr;
  }
  runtime::DeliveryJob job(int i, size_t padding = 0) {
    runtime::DeliveryJob j;
    const std::string id = "CONF-" + std::to_string(i);
    j.payload = "MSH|^~\\&|BUDSTIKKE|REGION|conformance|X|20261122||ADT^A01|" + id +
                "|P|2.5\rPID|1||" + std::to_string(i) + "^^^X^PI||Prøve^Åse\r" +
                testenv::incompressible(padding);
    j.idempotency_key = id;
    j.job_id = id;
    j.content_type = "application/hl7-v2";
    j.format = "hl7v2/2.5";
    j.system = "conformance";
    j.key = "p:" + std::to_string(i);
    j.headers = {{"bs-idempotency-key", id}};
    return j;
  }
  std::unique_ptr<Receiver> receiver_;
  std::shared_ptr<const registry::Registry> registry_;
  std::unique_ptr<bus::Producer> producer_;
  delivery::SinkFactories factories_;
};

TEST_P(Conformance, Delivers) {
  auto s = sink();
  ASSERT_TRUE(s);
  for (int i = 0; i < 20; ++i) {
    const auto r = s->send(job(i));
    ASSERT_TRUE(r.is_ok()) << r.reason;
  }
  auto got = receiver_->received();
  ASSERT_EQ(got.size(), 20u);
  std::set<std::string> keys;
  for (const auto& g : got) {
    keys.insert(g.key);
    EXPECT_NE(g.payload.find("Prøve^Åse"), std::string::npos) << "bytes changed on the way";
  }
  EXPECT_EQ(keys.size(), 20u);
  EXPECT_TRUE(keys.count("CONF-7"));
}

TEST_P(Conformance, OpenClose) {
  { auto unused = sink(); }
  auto s = sink();
  ASSERT_TRUE(s->send(job(1)).is_ok());
  s.reset();
  auto again = sink();
  ASSERT_TRUE(again->send(job(2)).is_ok());
  EXPECT_EQ(receiver_->received().size(), 2u);
}

TEST_P(Conformance, ReceiverSaysLater) {
  auto s = sink();
  if (GetParam().name == "kafka") GTEST_SKIP() << "a Kafka topic has no 'try later' answer";
  receiver_->answer_next(Answer::kLater);
  const auto r = s->send(job(1));
  EXPECT_EQ(r.kind, runtime::DeliveryResult::Kind::kRetriable) << r.reason;
  EXPECT_FALSE(r.reason.empty());
  if (auto* f = dynamic_cast<FileReceiver*>(receiver_.get())) f->unblock();
  const auto again = s->send(job(1));
  EXPECT_TRUE(again.is_ok()) << again.reason;
  EXPECT_EQ(receiver_->received().size(), 1u);
}

TEST_P(Conformance, ReceiverRejects) {
  if (!receiver_->can_reject()) GTEST_SKIP() << "this receiver never refuses for good";
  auto s = sink();
  receiver_->answer_next(Answer::kReject);
  const bool kafka = GetParam().name == "kafka";
  const auto r = s->send(job(1, kafka ? 5000 : 0));
  EXPECT_EQ(r.kind, runtime::DeliveryResult::Kind::kPermanent) << r.reason;
  EXPECT_FALSE(r.reason.empty());
  EXPECT_TRUE(s->send(job(2)).is_ok());
}

TEST_P(Conformance, Reconnects) {
  auto s = sink();
  ASSERT_TRUE(s->send(job(1)).is_ok());
  receiver_->drop_connections();
  std::this_thread::sleep_for(100ms);
  // The connector notices the dropped connection and opens a new one, at most one
  // retriable failure on the way.
  auto r = s->send(job(2));
  if (!r.is_ok()) {
    EXPECT_EQ(r.kind, runtime::DeliveryResult::Kind::kRetriable) << r.reason;
    r = s->send(job(2));
  }
  EXPECT_TRUE(r.is_ok()) << r.reason;
  std::set<std::string> keys;
  for (const auto& g : receiver_->received()) keys.insert(g.key);
  EXPECT_TRUE(keys.count("CONF-1") && keys.count("CONF-2"));
}

TEST_P(Conformance, ReceiverDown) {
  if (!receiver_->can_go_down()) GTEST_SKIP() << "the shared test broker is not taken down";
  auto s = sink();
  ASSERT_TRUE(s->send(job(1)).is_ok());
  receiver_->go_down();
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = s->send(job(2));
  EXPECT_EQ(r.kind, runtime::DeliveryResult::Kind::kRetriable) << r.reason;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "gave up within its timeouts";
  receiver_->come_back();
  auto again = s->send(job(2));
  if (!again.is_ok()) again = s->send(job(2));
  EXPECT_TRUE(again.is_ok()) << again.reason;
}

// The delivery stage sends over HTTP and MLLP on shared event loops: three connections of
// one system on one loop thread, each sending its jobs one after another, every outcome
// reported on the loop's thread and never inside send_async; then the receiver goes down
// (retriable, within the timeouts; not the shared Kafka broker) and comes back, sent with
// send() from another thread.
TEST_P(Conformance, SendsOnASharedLoop) {
  const auto& sys = *registry_->find("conformance");
  const auto* f = factories_.find_on_loop(sys.connector.type);
  if (!f) GTEST_SKIP() << "this connector blocks in send: a thread per connection";
  boost::asio::io_context loop;
  auto work = boost::asio::make_work_guard(loop);
  std::thread::id loop_thread;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop.run();
  });
  constexpr int kSinks = 3, kEach = 10;
  std::vector<std::unique_ptr<runtime::Sink>> sinks;
  for (int i = 0; i < kSinks; ++i) {
    auto made = (*f)(sys, loop);
    ASSERT_TRUE(made.ok());
    sinks.push_back(std::move(*made));
  }
  std::mutex mu;
  std::condition_variable cv;
  int ok = 0, failed = 0, inline_calls = 0, off_loop = 0;
  std::vector<runtime::DeliveryJob> jobs;
  jobs.reserve(static_cast<size_t>(kSinks) * kEach);
  for (int i = 0; i < kSinks * kEach; ++i) jobs.push_back(job(i));
  // Sink s sends jobs s, s + kSinks, ... each after the one before it ended.
  std::function<void(int, int)> next = [&](int s, int n) {
    if (n >= kEach) return;
    auto returned = std::make_shared<bool>(false);
    sinks[static_cast<size_t>(s)]->send_async(
        jobs[static_cast<size_t>(s) + static_cast<size_t>(n) * kSinks],
        [&, s, n, ret = returned](const runtime::DeliveryResult& r) {
          {
            const std::lock_guard lock(mu);
            if (!*ret) ++inline_calls;
            if (std::this_thread::get_id() != loop_thread) ++off_loop;
            (r.is_ok() ? ok : failed) += 1;
            if (!r.is_ok()) ADD_FAILURE() << r.reason;
          }
          cv.notify_all();
          next(s, n + 1);
        });
    *returned = true;
  };
  boost::asio::post(loop, [&] {
    for (int s = 0; s < kSinks; ++s) next(s, 0);
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return ok + failed == kSinks * kEach; }));
  }
  EXPECT_EQ(ok, kSinks * kEach);
  EXPECT_EQ(inline_calls, 0) << "done was called inside send_async";
  EXPECT_EQ(off_loop, 0);
  std::set<std::string> keys;
  for (const auto& g : receiver_->received()) keys.insert(g.key);
  EXPECT_EQ(keys.size(), static_cast<size_t>(kSinks * kEach));

  // Down: retriable within the timeouts; back: delivered again. From this thread, send()
  // begins each on the loop and waits for it; on the loop's own thread it refuses.
  if (receiver_->can_go_down()) {  // not the shared test broker
    receiver_->go_down();
    const auto t0 = std::chrono::steady_clock::now();
    const auto down = sinks[0]->send(job(100));
    EXPECT_EQ(down.kind, runtime::DeliveryResult::Kind::kRetriable) << down.reason;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    receiver_->come_back();
  }
  auto back = sinks[1]->send(job(101));
  if (!back.is_ok()) back = sinks[1]->send(job(101));
  EXPECT_TRUE(back.is_ok()) << back.reason;
  std::promise<bool> refused;
  boost::asio::post(loop, [&] {
    try {
      (void)sinks[2]->send(job(102));
      refused.set_value(false);
    } catch (const std::logic_error&) {
      refused.set_value(true);
    }
  });
  EXPECT_TRUE(refused.get_future().get()) << "send() on the loop's thread must not wait on it";
  boost::asio::post(loop, [&] { sinks.clear(); });
  work.reset();
  runner.join();
}

INSTANTIATE_TEST_SUITE_P(
    Connectors, Conformance,
    ::testing::Values(Connector{"http", [] { return std::make_unique<testenv::HttpReceiver>(); }},
                      Connector{"https", [] { return std::make_unique<HttpsConformance>(); }},
                      Connector{"mllps", [] { return std::make_unique<MllpsConformance>(); }},
                      Connector{"mllp", [] { return std::make_unique<testenv::MllpReceiver>(); }},
                      Connector{"file", [] { return std::make_unique<FileReceiver>(); }},
                      Connector{"kafka", [] { return std::make_unique<KafkaReceiver>(); }}),
    [](const ::testing::TestParamInfo<Connector>& p) { return p.param.name; });

}  // namespace

// Mutual TLS is enforced both ways: a connector without a client certificate is refused by
// the receiver, and a receiver whose certificate the connector's CA did not sign is refused
// by the connector. Both are retriable failures with the reason, and nothing is delivered.
// TLS files that cannot be loaded are the configuration's fault: permanent, naming the file.
template <class Receiver>
void expect_mutual_tls_both_ways(const std::string& scheme, const std::string& payload) {
  const auto& keys = pki();
  Receiver receiver;
  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  delivery::SinkFactories f;
  cli::add_connector_sinks(f);
  auto send_with = [&](const std::string& tls_yaml) {
    config::Diagnostics d;
    auto reg = registry::Registry::parse(
        "systems:\n  - id: x\n    name: X\n    connector:\n"
        "      url: \"" +
            receiver.url() + "\"\n" + tls_yaml,
        "tls.yaml", d);
    EXPECT_FALSE(d.has_errors()) << d.format_all();
    auto sink = (*f.find(scheme))(*reg->find("x"));
    runtime::DeliveryJob j;
    j.payload = payload;
    j.idempotency_key = "TLS-1";
    return (*sink)->send(j);
  };
  const auto no_client_cert = send_with("      tls:\n        ca_file: " + keys.ca + "\n");
  EXPECT_EQ(no_client_cert.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_NE(no_client_cert.reason.find("TLS"), std::string::npos) << no_client_cert.reason;
  const auto wrong_ca = send_with("      tls:\n        ca_file: " + keys.other_ca +
                                  "\n        cert_file: " + keys.client_cert +
                                  "\n        key_file: " + keys.client_key + "\n");
  EXPECT_EQ(wrong_ca.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_NE(wrong_ca.reason.find("TLS handshake"), std::string::npos) << wrong_ca.reason;
  const auto missing_file = send_with("      tls:\n        ca_file: /nonexistent/ca.pem\n");
  EXPECT_EQ(missing_file.kind, runtime::DeliveryResult::Kind::kPermanent) << missing_file.reason;
  EXPECT_NE(missing_file.reason.find("/nonexistent/ca.pem"), std::string::npos);
  const auto missing_key = send_with("      tls:\n        ca_file: " + keys.ca +
                                     "\n        cert_file: " + keys.client_cert +
                                     "\n        key_file: /nonexistent/client.key\n");
  EXPECT_EQ(missing_key.kind, runtime::DeliveryResult::Kind::kPermanent) << missing_key.reason;
  EXPECT_NE(missing_key.reason.find("/nonexistent/client.key"), std::string::npos);
  EXPECT_TRUE(receiver.received().empty());
  EXPECT_GE(receiver.handshakes_refused(), 1);
}

TEST(Https, MutualTlsIsEnforcedBothWays) {
  expect_mutual_tls_both_ways<HttpsConformance>("https", "{}");
}

TEST(Mllps, MutualTlsIsEnforcedBothWays) {
  expect_mutual_tls_both_ways<MllpsConformance>(
      "mllps", "MSH|^~\\&|A|B|C|D|20261204120000||ADT^A01|TLS-1|P|2.5\r");
}
