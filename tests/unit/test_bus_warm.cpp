// A producer fetches every topic's metadata when it is created (design note 58); with no
// broker to answer, that costs its timeout and nothing else.

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <string>

#include "engine/bus/bus.hpp"

using namespace budstikke;

namespace {

// A loopback port nothing listens on.
int closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

}  // namespace

TEST(ProducerMetadata, NoBrokerMakesTheWarmUpFailAndTheProducerStillUsable) {
  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = "127.0.0.1:" + std::to_string(closed_port());
  bus::ProducerOptions po;
  po.warm_timeout_ms = 200;
  po.message_timeout_ms = 500;
  auto p = bus::Producer::create(ks, po);
  ASSERT_TRUE(p.ok()) << p.error().message;
  const auto st = (*p)->warm_metadata(std::chrono::milliseconds(200));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("metadata of every topic"), std::string::npos)
      << st.error().message;
  // Still a producer: a record is taken, and reported as not delivered.
  auto d = (*p)->send_sync({"some-topic", "k", "v", {}, -1}, std::chrono::seconds(10));
  ASSERT_FALSE(d.ok());
  // Nothing stuck in flight (the count drops right after the report's callback returns).
  (void)(*p)->flush(std::chrono::seconds(5));
  EXPECT_EQ((*p)->in_flight(), 0);
}
