#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "engine/config/engine_config.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace budstikke::config;

namespace {

std::string write(const testenv::TempDir& dir, const std::string& name, const std::string& text) {
  const auto p = dir.path() / name;
  std::ofstream(p) << text;
  return p.string();
}

bool has(const Diagnostics& d, const std::string& needle) {
  return d.format_all().find(needle) != std::string::npos;
}

}  // namespace

TEST(EngineConfig, ShippedConfigIsValid) {
  Diagnostics d;
  const auto cfg = load_engine_config((testenv::source_dir() / "config/engine.yaml").string(), d);
  EXPECT_FALSE(d.has_errors()) << d.format_all();
  EXPECT_FALSE(cfg.kafka.bootstrap().empty());
  EXPECT_GE(cfg.key_secret.size(), 16u);
}

TEST(EngineConfig, ValidCaseMapsToKafkaProperties) {
  testenv::TempDir dir;
  const auto f = write(dir, "engine.yaml", R"(kafka:
  bootstrap_servers: kafka-1.region.local:9093,kafka-2.region.local:9093
  security_protocol: sasl_ssl
  tls:
    ca_file: /etc/budstikke/ca.pem
  sasl:
    mechanism: SCRAM-SHA-512
    username: budstikke
    password: s3cret
  properties:
    socket.keepalive.enable: "true"
privacy:
  key_secret: 0123456789abcdef0123
)");
  Diagnostics d;
  const auto cfg = load_engine_config(f, d);
  ASSERT_FALSE(d.has_errors()) << d.format_all();
  auto& p = cfg.kafka.properties;
  EXPECT_EQ(p.at("bootstrap.servers"), "kafka-1.region.local:9093,kafka-2.region.local:9093");
  EXPECT_EQ(p.at("security.protocol"), "sasl_ssl");
  EXPECT_EQ(p.at("ssl.ca.location"), "/etc/budstikke/ca.pem");
  EXPECT_EQ(p.at("sasl.mechanisms"), "SCRAM-SHA-512");
  EXPECT_EQ(p.at("sasl.password"), "s3cret");
  EXPECT_EQ(p.at("socket.keepalive.enable"), "true");
  EXPECT_EQ(cfg.kafka.default_partitions, 4);
  EXPECT_EQ(cfg.kafka.statistics_interval_ms, 15000);  // the budstikke_kafka_* metrics, on
}

TEST(EngineConfig, EveryProblemReportedAtOnceWithPosition) {
  testenv::TempDir dir;
  const auto f = write(dir, "engine.yaml", R"(kafka:
  bootstrap_server: 127.0.0.1:9092
  partitions: lots
  replication_factor: 99
  security_protocol: carrier-pigeon
privacy:
  key_secret: short
log:
  level: loud
colour: blue
)");
  Diagnostics d;
  (void)load_engine_config(f, d);
  ASSERT_TRUE(d.has_errors());
  const std::string out = d.format_all();
  EXPECT_TRUE(has(d, f + ":2:3: error: kafka.bootstrap_server: unknown key; did you mean "
                         "'bootstrap_servers'?"))
      << out;
  EXPECT_TRUE(has(d, f + ":3:15: error: kafka.partitions: expected an integer")) << out;
  EXPECT_TRUE(has(d, f + ":4:23: error: kafka.replication_factor: must be at most 7")) << out;
  EXPECT_TRUE(has(d, f + ":7:15: error: privacy.key_secret: must be at least 16")) << out;
  EXPECT_TRUE(has(d, f + ":5:22: error: kafka.security_protocol: 'carrier-pigeon' is not one of"))
      << out;
  EXPECT_TRUE(has(d, f + ":9:10: error: log.level: 'loud' is not one of")) << out;
  EXPECT_TRUE(has(d, f + ":10:1: error: colour: unknown key")) << out;
}

// kafka.compression: lz4 unless set; one of the codecs librdkafka and the broker both have;
// a codec among the pass-through properties is refused (the key sets every producer's).
TEST(EngineConfig, CompressionIsLz4UnlessSetAndOneKeySetsIt) {
  testenv::TempDir dir;
  const std::string privacy = "privacy:\n  key_secret: 0123456789abcdef0123\n";
  for (const std::string codec : {"", "none", "zstd", "snappy", "gzip"}) {  // "": not set
    Diagnostics d;
    const std::string key = codec.empty() ? "" : "kafka:\n  compression: " + codec + "\n";
    const auto cfg = load_engine_config(write(dir, "b.yaml", privacy + key), d);
    ASSERT_FALSE(d.has_errors()) << d.format_all();
    EXPECT_EQ(cfg.kafka.compression, codec.empty() ? "lz4" : codec);
  }
  Diagnostics d;
  const auto f = write(dir, "c.yaml",
                       privacy +
                           "kafka:\n  compression: brotli\n  properties:\n"
                           "    compression.codec: zstd\n    compression.type: gzip\n");
  (void)load_engine_config(f, d);
  EXPECT_TRUE(has(d, f + ":4:16: error: kafka.compression: 'brotli' is not one of"))
      << d.format_all();
  EXPECT_TRUE(has(d, f + ":6:5: error: kafka.properties.compression.codec: set kafka.compression "
                         "instead"))
      << d.format_all();
  EXPECT_TRUE(has(d, f + ":7:5: error: kafka.properties.compression.type: set kafka.compression "
                         "instead"))
      << d.format_all();
}

TEST(EngineConfig, InstanceIsTheHostNameUnlessSetAndMustBeAName) {
  testenv::TempDir dir;
  const std::string privacy = "privacy:\n  key_secret: 0123456789abcdef0123\n";
  {
    Diagnostics d;
    const auto cfg = load_engine_config(write(dir, "a.yaml", privacy), d);
    ASSERT_FALSE(d.has_errors()) << d.format_all();
    EXPECT_EQ(cfg.instance, host_instance_name());
    EXPECT_TRUE(valid_instance_name(cfg.instance)) << cfg.instance;
    EXPECT_TRUE(cfg.static_membership);
  }
  {
    Diagnostics d;
    const auto cfg = load_engine_config(
        write(dir, "b.yaml",
              "kafka:\n  instance: bs-2.region_a\n  static_membership: false\n" + privacy),
        d);
    ASSERT_FALSE(d.has_errors()) << d.format_all();
    EXPECT_EQ(cfg.instance, "bs-2.region_a");
    EXPECT_FALSE(cfg.static_membership);
  }
  {
    // Reported with the other problems, at its position.
    const auto f =
        write(dir, "c.yaml", "kafka:\n  instance: engine one\n  partitions: lots\n" + privacy);
    Diagnostics d;
    (void)load_engine_config(f, d);
    EXPECT_TRUE(has(d, f + ":2:13: error: kafka.instance: 'engine one' is not an instance name"))
        << d.format_all();
    EXPECT_TRUE(has(d, f + ":3:15: error: kafka.partitions: expected an integer"))
        << d.format_all();
  }
  EXPECT_FALSE(valid_instance_name(std::string(65, 'a')));
  EXPECT_TRUE(valid_instance_name(std::string(64, 'a')));
  EXPECT_FALSE(valid_instance_name(""));
  EXPECT_FALSE(valid_instance_name("a/b"));
}

TEST(EngineConfig, MissingRequiredSection) {
  testenv::TempDir dir;
  const auto f = write(dir, "engine.yaml", "kafka:\n  client_id: x\n");
  Diagnostics d;
  (void)load_engine_config(f, d);
  EXPECT_TRUE(has(d, "privacy: is required")) << d.format_all();
}

TEST(EngineConfig, ShortSecretIsRejected) {
  testenv::TempDir dir;
  const auto f = write(dir, "engine.yaml", "privacy:\n  key_secret: short\n");
  Diagnostics d;
  (void)load_engine_config(f, d);
  EXPECT_TRUE(has(d, f + ":2:15: error: privacy.key_secret: must be at least 16 characters"))
      << d.format_all();
}

TEST(EngineConfig, YamlSyntaxErrorHasPosition) {
  testenv::TempDir dir;
  const auto f = write(dir, "engine.yaml", "kafka:\n  bootstrap_servers: [unclosed\nprivacy: {}\n");
  Diagnostics d;
  (void)load_engine_config(f, d);
  ASSERT_TRUE(d.has_errors());
  EXPECT_TRUE(has(d, f + ":")) << d.format_all();
  EXPECT_TRUE(has(d, "YAML syntax")) << d.format_all();
  EXPECT_EQ(d.items()[0].line > 0, true);
}

TEST(EngineConfig, MissingFile) {
  Diagnostics d;
  (void)load_engine_config("/nonexistent/engine.yaml", d);
  EXPECT_TRUE(has(d, "/nonexistent/engine.yaml: error: cannot open file")) << d.format_all();
}

TEST(EngineConfig, EnvironmentExpansion) {
  testenv::TempDir dir;
  ::setenv("BS_TEST_SECRET", "from-the-environment-123", 1);
  ::unsetenv("BS_TEST_UNSET");
  const auto f = write(dir, "engine.yaml",
                       "kafka:\n  bootstrap_servers: ${BS_TEST_UNSET:-localhost:1}\n"
                       "privacy:\n  key_secret: ${BS_TEST_SECRET}\n");
  Diagnostics d;
  const auto cfg = load_engine_config(f, d);
  ASSERT_FALSE(d.has_errors()) << d.format_all();
  EXPECT_EQ(cfg.key_secret, "from-the-environment-123");
  EXPECT_EQ(cfg.kafka.bootstrap(), "localhost:1");

  const auto g = write(dir, "g.yaml", "privacy:\n  key_secret: ${BS_TEST_UNSET}\n");
  Diagnostics d2;
  (void)load_engine_config(g, d2);
  EXPECT_TRUE(has(d2, g + ":2:15: error: privacy.key_secret: environment variable BS_TEST_UNSET "
                          "is not set"))
      << d2.format_all();
}

TEST(EngineConfig, ReferenceDocumentsEveryField) {
  const std::string md = reference_markdown(engine_spec());
  for (const char* key : {"bootstrap_servers", "security_protocol", "key_secret", "ca_file",
                          "mechanism", "claim_check_threshold", "directory"})
    EXPECT_NE(md.find(std::string("`") + key + "`"), std::string::npos) << key;
  EXPECT_NE(md.find("secret"), std::string::npos);
}

TEST(EngineConfig, DeliveryJobTopicsDefaultToOnePerSystem) {
  testenv::TempDir dir;
  const std::string head = "privacy:\n  key_secret: 0123456789abcdef0123\n";
  const auto load = [&](const std::string& name, const std::string& text, Diagnostics& d) {
    return load_engine_config(write(dir, name, head + text), d);
  };
  Diagnostics d;
  const auto cfg = load("plain.yaml", "", d);
  ASSERT_FALSE(d.has_errors()) << d.format_all();
  EXPECT_FALSE(cfg.jobs_per_route);
  EXPECT_EQ(cfg.job_topic_partitions, 0);
  EXPECT_EQ(cfg.max_pending_per_system, 2000);
  EXPECT_EQ(cfg.route_batch_ms, 15);
  EXPECT_EQ(cfg.route_batch_max, 500);
  EXPECT_EQ(cfg.route_idle_commit, std::chrono::milliseconds(1000));
  EXPECT_FALSE(cfg.route_commit_after_ack);

  Diagnostics d2;
  const auto cfg2 = load("route.yaml",
                         "delivery:\n  job_topics: route\n  max_pending_per_system: 500\n"
                         "  route_batch_ms: 0\n  route_batch_max: 50\n  job_topic_partitions: 1\n"
                         "  route_idle_commit_ms: 0\n  route_commit: after_ack\n",
                         d2);
  ASSERT_FALSE(d2.has_errors()) << d2.format_all();
  EXPECT_TRUE(cfg2.jobs_per_route);
  EXPECT_EQ(cfg2.job_topic_partitions, 1);
  EXPECT_EQ(cfg2.max_pending_per_system, 500);
  EXPECT_EQ(cfg2.route_batch_ms, 0);
  EXPECT_EQ(cfg2.route_batch_max, 50);
  EXPECT_EQ(cfg2.route_idle_commit, std::chrono::milliseconds(0));
  EXPECT_TRUE(cfg2.route_commit_after_ack);

  Diagnostics d3;
  (void)load("bad.yaml",
             "delivery:\n  job_topics: patient\n  max_pending_per_system: 1\n"
             "  route_batch_ms: 2000\n  route_batch_max: 0\n  job_topic_partitions: 2000\n"
             "  route_idle_commit_ms: -1\n  route_commit: never\n",
             d3);
  const std::string bad = (dir.path() / "bad.yaml").string();
  EXPECT_TRUE(has(d3, bad + ":4:15: error: delivery.job_topics: 'patient' is not one of"))
      << d3.format_all();
  EXPECT_TRUE(has(d3, bad + ":5:27: error: delivery.max_pending_per_system: must be at least 10"))
      << d3.format_all();
  EXPECT_TRUE(has(d3, bad + ":6:19: error: delivery.route_batch_ms: must be at most 1000"))
      << d3.format_all();
  EXPECT_TRUE(has(d3, bad + ":7:20: error: delivery.route_batch_max: must be at least 1"))
      << d3.format_all();
  EXPECT_TRUE(has(d3, bad + ":8:25: error: delivery.job_topic_partitions: must be at most 1024"))
      << d3.format_all();
  EXPECT_TRUE(has(d3, bad + ":9:25: error: delivery.route_idle_commit_ms: must be at least 0"))
      << d3.format_all();
  EXPECT_TRUE(has(d3, bad + ":10:17: error: delivery.route_commit: 'never' is not one of"))
      << d3.format_all();
}

// A spec is refined by field name; a name it does not declare is an error in the program,
// reported with the spec's and the field's names, never a change to another field.
TEST(Spec, FieldsAreRefinedByNameAndAnUnknownNameThrows) {
  Spec s{"sources[] (type: test)",
         "A test spec.",
         {make_field("name", Kind::kString, "Name.", std::nullopt, true),
          make_int("port", "Port.", 8080, 0, 65535), make_int("threads", "Threads.", 2, 1)}};
  s.at("threads").max = 64;
  EXPECT_EQ(s.find("threads")->max, 64);
  EXPECT_EQ(s.find("port")->min, 0);
  EXPECT_EQ(s.find("port")->max, 65535);
  EXPECT_EQ(s.find("port")->default_value, "8080");
  try {
    s.at("prot");
    FAIL() << "no exception for an undeclared field";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "sources[] (type: test) declares no field 'prot'");
  }
}

TEST(Spec, AnIntegerOutsideItsBoundsIsReportedAtItsPosition) {
  const Spec s{
      "test.yaml",
      "A test spec.",
      {make_int("threads", "Threads.", 2, 1, 64), make_int("retry_ms", "Retry.", 100, 10)}};
  Diagnostics d;
  validate(YAML::Load("threads: 65\nretry_ms: 1000000\n"), s, "test.yaml", "", d);
  ASSERT_EQ(d.items().size(), 1U) << d.format_all();
  EXPECT_NE(d.format_all().find("test.yaml:1:"), std::string::npos) << d.format_all();
  EXPECT_NE(d.format_all().find("threads"), std::string::npos) << d.format_all();
}
