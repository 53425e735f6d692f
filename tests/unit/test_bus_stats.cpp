// Reading librdkafka's statistics documents for the budstikke_kafka_* metrics; the client ids
// of the engine's clients.

#include <gtest/gtest.h>

#include <string>

#include "engine/bus/bus.hpp"

using namespace budstikke;

namespace {

// The shape librdkafka 2.0 emits (STATISTICS.md), trimmed: a bootstrap placeholder and the
// broker it resolved to, then the topics section the parser cuts off unread, then the
// client's totals (librdkafka sums them while it writes the topics, so they come last).
std::string document(const std::string& topics_section) {
  return R"({"name":"budstikke#producer-1","client_id":"budstikke","type":"producer",)"
         R"("ts":1234,"msg_cnt":17,"msg_size":9000,)"
         R"("brokers":{)"
         R"("127.0.0.1:19092/bootstrap":{"name":"127.0.0.1:19092/bootstrap","nodeid":-1,)"
         R"("tx":0,"waitresp_cnt":0,"req":{"Produce":0},"rtt":{"p50":0,"p99":0,"cnt":0}},)"
         R"("127.0.0.1:19092/1":{"name":"127.0.0.1:19092/1","nodeid":1,"state":"UP",)"
         R"("tx":412,"outbuf_cnt":0,"waitresp_cnt":3,"req":{"Produce":410,"Metadata":2},)"
         R"("int_latency":{"min":10,"max":5000,"avg":900,"p50":850,"p99":3100,"cnt":4200},)"
         R"("rtt":{"min":200,"max":9000,"avg":700,"p50":640,"p99":4400,"cnt":410},)"
         R"("toppars":{"jobs.adt-0":{"topic":"jobs.adt","partition":0}}}},)" +
         topics_section + R"("tx":412,"tx_bytes":4400000,"txmsgs":4200,"txmsg_bytes":4300000})";
}

}  // namespace

TEST(ProducerStats, ReadsTheBrokersAndSkipsTheTopicsSection) {
  // The topics section is deliberately not JSON: the parser must never read it.
  const auto st =
      bus::parse_producer_stats(document(R"("topics":{"x": not json {{ at all "txmsgs":1 },)"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->client, "budstikke#producer-1");
  EXPECT_EQ(st->queued_messages, 17);
  EXPECT_EQ(st->records_sent, 4200);
  EXPECT_EQ(st->record_bytes_sent, 4300000);
  EXPECT_EQ(st->bytes_sent, 4400000);
  ASSERT_EQ(st->brokers.size(), 1u);  // the bootstrap placeholder is left out
  const auto& b = st->brokers[0];
  EXPECT_EQ(b.id, 1);
  EXPECT_EQ(b.in_flight, 3);
  EXPECT_EQ(b.produce_requests, 410);
  EXPECT_EQ(b.queue_samples, 4200);
  EXPECT_EQ(b.rtt_samples, 410);
  EXPECT_DOUBLE_EQ(b.queue_p50_us, 850);
  EXPECT_DOUBLE_EQ(b.queue_p99_us, 3100);
  EXPECT_DOUBLE_EQ(b.rtt_p50_us, 640);
  EXPECT_DOUBLE_EQ(b.rtt_p99_us, 4400);
}

TEST(ProducerStats, ADocumentWithoutTopicsIsReadWhole) {
  const auto st = bus::parse_producer_stats(document(""));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->records_sent, 4200);
  ASSERT_EQ(st->brokers.size(), 1u);
  EXPECT_EQ(st->brokers[0].produce_requests, 410);
}

TEST(ProducerStats, AnythingElseIsNotAReport) {
  EXPECT_FALSE(bus::parse_producer_stats("").has_value());
  EXPECT_FALSE(bus::parse_producer_stats("{\"brokers\":{}}").has_value());  // no name
  EXPECT_FALSE(bus::parse_producer_stats("[1,2,3]").has_value());
  EXPECT_FALSE(bus::parse_producer_stats("{\"name\":\"x\",").has_value());
}

// Each long-lived client reports its role in its client.id.
TEST(KafkaSettingsForRole, AddsTheRoleToTheConfiguredClientId) {
  bus::KafkaSettings s;
  s.properties["client.id"] = "region-nord";
  s.properties["bootstrap.servers"] = "127.0.0.1:19092";
  const auto r = s.for_role("route.adt-fanout");
  EXPECT_EQ(r.properties.at("client.id"), "region-nord.route.adt-fanout");
  EXPECT_EQ(r.bootstrap(), "127.0.0.1:19092");
  EXPECT_EQ(s.properties.at("client.id"), "region-nord");  // the original is untouched
  EXPECT_EQ(s.for_role("").properties.at("client.id"), "region-nord");
}

TEST(KafkaSettingsForRole, WithoutAClientIdTheBaseIsBudstikke) {
  bus::KafkaSettings s;
  EXPECT_EQ(s.for_role("delivery").properties.at("client.id"), "budstikke.delivery");
  s.properties["client.id"] = "";
  EXPECT_EQ(s.for_role("engine").properties.at("client.id"), "budstikke.engine");
}
