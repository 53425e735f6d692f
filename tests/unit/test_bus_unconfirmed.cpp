// librdkafka 2.0.2 reports a refused batch delivered when a later batch to the same
// partition was taken ("implicitly acked"); for a partition's first batches from a producer,
// which a broker takes whatever their sequence numbers, that record is lost (design note 59).
// Played on librdkafka's mock cluster (a broker on a loopback port): the next produce
// request is answered NOT_LEADER 300 ms late, the one after it is taken at once.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "engine/bus/bus.hpp"

using namespace budstikke;
using namespace std::chrono_literals;

namespace {

class MockCluster {
 public:
  MockCluster() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // Only the cluster's bookkeeping: it connects nowhere, which it need not say.
    (void)rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk_) mc_ = rd_kafka_mock_cluster_new(rk_, 1);
    if (mc_) (void)rd_kafka_mock_topic_create(mc_, "t", 1, 1);
  }
  ~MockCluster() {
    if (mc_) rd_kafka_mock_cluster_destroy(mc_);
    if (rk_) rd_kafka_destroy(rk_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  bool ok() const { return mc_ != nullptr; }
  bus::KafkaSettings settings() const {
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = rd_kafka_mock_cluster_bootstraps(mc_);
    return ks;
  }
  // The next produce request is refused, late; the one after it is taken at once.
  void refuse_next_produce_late() {
    (void)rd_kafka_mock_broker_push_request_error_rtts(mc_, 1, 0 /* Produce */, 2,
                                                       RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                                       300, RD_KAFKA_RESP_ERR_NO_ERROR, 0);
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

}  // namespace

TEST(ProducerDelivery, ARecordAcknowledgedOnlyByALaterBatchIsReportedNotDelivered) {
  MockCluster cluster;
  ASSERT_TRUE(cluster.ok());
  bus::ProducerOptions po;
  po.linger_ms = 0;
  auto p = bus::Producer::create(cluster.settings(), po);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_TRUE((*p)->send_sync({"t", "k", "first", {}, 0}, 10s).ok());  // producer id, metadata
  cluster.refuse_next_produce_late();
  std::promise<Result<bus::Delivery>> refused;
  std::promise<Result<bus::Delivery>> taken;
  ASSERT_TRUE((*p)->send({"t", "k", "a", {}, 0},
                         [&refused](const Result<bus::Delivery>& d) { refused.set_value(d); })
                  .ok());
  std::this_thread::sleep_for(50ms);  // its request is out and unanswered
  ASSERT_TRUE((*p)->send({"t", "k", "b", {}, 0},
                         [&taken](const Result<bus::Delivery>& d) { taken.set_value(d); })
                  .ok());
  auto refused_f = refused.get_future();
  auto taken_f = taken.get_future();
  ASSERT_EQ(refused_f.wait_for(20s), std::future_status::ready);
  ASSERT_EQ(taken_f.wait_for(20s), std::future_status::ready);
  const auto a = refused_f.get();
  const auto b = taken_f.get();
  // "b" is at offset 1, right after "first": "a" was never written. Reported as a
  // retriable failure, the caller sends it again.
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->offset, 1);
  ASSERT_FALSE(a.ok()) << "reported delivered at offset " << a->offset;
  EXPECT_TRUE(a.error().retriable);
  EXPECT_NE(a.error().message.find("not confirmed"), std::string::npos) << a.error().message;
  // Nothing left in flight (the count drops right after the report's callback returns).
  EXPECT_TRUE((*p)->flush(5s).ok());
  EXPECT_EQ((*p)->in_flight(), 0);
}

// The same refusal inside a transaction: it must not commit. librdkafka 2.0.2's
// transactional producer fails this one itself ("skipped sequence numbers"); commit()'s own
// check (a record reported without its offset) covers the reports this case does not make.
TEST(ProducerDelivery, ATransactionWithARecordAcknowledgedOnlyByALaterBatchIsNotCommitted) {
  MockCluster cluster;
  ASSERT_TRUE(cluster.ok());
  auto p = bus::TransactionalProducer::create(cluster.settings(), "unconfirmed-test", 10000ms);
  ASSERT_TRUE(p.ok()) << p.error().message;
  // "a" is this producer's first batch on the partition (on one it wrote to before, the
  // gap in the sequence numbers fails the transaction anyway).
  cluster.refuse_next_produce_late();
  ASSERT_TRUE((*p)->begin().ok());
  ASSERT_TRUE((*p)->send({"t", "k", "a", {}, 0}).ok());
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE((*p)->send({"t", "k", "b", {}, 0}).ok());
  const auto st = (*p)->commit(10000ms);
  ASSERT_FALSE(st.ok()) << "committed without \"a\"";
  // The caller aborts and writes the batch again, which commits.
  ASSERT_TRUE((*p)->abort(10000ms).ok());
  ASSERT_TRUE((*p)->begin().ok());
  ASSERT_TRUE((*p)->send({"t", "k", "a", {}, 0}).ok());
  ASSERT_TRUE((*p)->send({"t", "k", "b", {}, 0}).ok());
  EXPECT_TRUE((*p)->commit(10000ms).ok());
}
