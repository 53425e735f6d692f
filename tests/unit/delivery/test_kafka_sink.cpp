// The Kafka connector on a delivery loop, against an address where no broker answers (so no
// broker is needed): without a delivery report within the connector's timeout_ms the send is
// a retriable failure, reported on the loop's thread and never inside send_async; the verdict
// librdkafka gives later (its message timeout) comes after the sink and the loop are gone and
// goes nowhere (run under ASan, a post to the destroyed loop would be reported).

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include "engine/bus/bus.hpp"
#include "engine/config/spec.hpp"
#include "engine/delivery/sinks.hpp"
#include "engine/registry/registry.hpp"

namespace budstikke {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A loopback port nothing listens on.
int closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

TEST(KafkaSinkOnALoop, NoReportWithinTheTimeoutIsRetriableAndALateReportGoesNowhere) {
  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = "127.0.0.1:" + std::to_string(closed_port());
  bus::ProducerOptions po;
  po.message_timeout_ms = 1500;
  auto producer = bus::Producer::create(ks, po);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  config::Diagnostics d;
  const auto reg = registry::Registry::parse(
      "systems:\n  - id: national\n    name: National\n    connector:\n"
      "      url: \"kafka:national-topic\"\n      timeout_ms: 300\n",
      "systems.yaml", d);
  ASSERT_FALSE(d.has_errors()) << d.format_all();
  delivery::SinkFactories factories;
  delivery::add_builtin_sinks(factories, **producer, "");
  const auto* make = factories.find_on_loop("kafka");
  ASSERT_NE(make, nullptr);

  auto loop = std::make_unique<asio::io_context>();
  auto work = asio::make_work_guard(*loop);
  std::promise<std::thread::id> loop_id;
  std::thread runner([&] {
    loop_id.set_value(std::this_thread::get_id());
    loop->run();
  });
  const std::thread::id loop_thread = loop_id.get_future().get();
  auto made = (*make)(*reg->find("national"), *loop);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<runtime::Sink> sink = std::move(*made);

  runtime::DeliveryJob job;
  job.payload = "{\"event\":\"x\"}";
  job.key = "p:1";
  job.job_id = "J1";
  job.idempotency_key = "M1";
  struct Outcome {
    runtime::DeliveryResult result;
    bool on_loop = false;
    bool inline_call = false;
  };
  std::promise<Outcome> got;
  bool returned = false;  // loop thread only
  const auto t0 = std::chrono::steady_clock::now();
  asio::post(*loop, [&] {
    sink->send_async(job, [&](runtime::DeliveryResult r) {
      got.set_value({std::move(r), std::this_thread::get_id() == loop_thread, !returned});
    });
    returned = true;
  });
  auto fut = got.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  const Outcome o = fut.get();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(o.result.kind, runtime::DeliveryResult::Kind::kRetriable) << o.result.reason;
  EXPECT_NE(o.result.reason.find("no delivery report for national-topic within 300 ms"),
            std::string::npos)
      << o.result.reason;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 1400ms) << "ended by the connector's timeout, not librdkafka's";
  EXPECT_TRUE(o.on_loop);
  EXPECT_FALSE(o.inline_call);

  // The sink and then the loop go; librdkafka's own verdict on the record comes after.
  sink.reset();
  work.reset();
  loop->stop();
  runner.join();
  loop.reset();
  EXPECT_EQ((*producer)->in_flight(), 1);
  (void)(*producer)->flush(10s);
  EXPECT_EQ((*producer)->in_flight(), 0) << "the late report was served";
}

}  // namespace
}  // namespace budstikke
