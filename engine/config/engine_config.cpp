#include "engine/config/engine_config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace budstikke::config {
namespace {

Field str(std::string name, std::string desc, std::optional<std::string> def = std::nullopt) {
  Field f;
  f.name = std::move(name);
  f.kind = Kind::kString;
  f.description = std::move(desc);
  f.default_value = std::move(def);
  return f;
}

Field secret(Field f) {
  f.secret = true;
  return f;
}

Spec build_engine_spec_fields() {
  auto tls = make_spec(
      Spec{"kafka.tls",
           "TLS towards the Kafka cluster (security_protocol ssl or sasl_ssl).",
           {str("ca_file", "PEM file with the CA certificates to trust."),
            str("cert_file", "PEM client certificate (mutual TLS)."),
            str("key_file", "PEM private key of the client certificate."),
            secret(str("key_password", "Password of the private key.")),
            make_choice("verify_hostname", "Check the broker's host name against its certificate.",
                        "true", {"true", "false"})}});
  auto sasl = make_spec(
      Spec{"kafka.sasl",
           "SASL authentication towards the Kafka cluster.",
           {make_choice("mechanism", "SASL mechanism.", "SCRAM-SHA-512",
                        {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}),
            str("username", "SASL user name."), secret(str("password", "SASL password."))}});
  Field props;
  props.name = "properties";
  props.kind = Kind::kStringMap;
  props.description = "Any other librdkafka client property, passed through as is.";
  auto kafka = make_spec(Spec{
      "kafka",
      "The Kafka cluster. The default is the local broker `scripts/kafka start` runs.",
      {str("bootstrap_servers", "Comma-separated host:port list of brokers.", "127.0.0.1:19092"),
       str("client_id",
           "Client id reported to the brokers. Each long-lived client adds its role, so that "
           "the broker's request logs, metrics and quotas tell them apart: <client_id>.engine "
           "(ingest, tracking and delivery outcomes), <client_id>.route.<route> (a route's "
           "consumer and transactional producer; the AppRec loop is route.receipts), "
           "<client_id>.delivery (the delivery stage's consumer); the CLI's replay, audit and "
           "consume add theirs. Short admin requests (topic lists, offsets) use it as it is.",
           "budstikke"),
       make_choice("security_protocol", "Transport security.", "plaintext",
                   {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"}),
       make_object("tls", "TLS settings.", tls), make_object("sasl", "SASL settings.", sasl),
       make_int("partitions",
                "Partitions of topics the engine creates (the tracking and audit topics, read "
                "whole, have one). They are how engine instances sharing a consumer group share "
                "a topic's work, and a topic's count can only grow later (which moves keys, so "
                "per-patient order breaks across the change). librdkafka sends one produce "
                "request per partition, so fewer partitions mean fewer, larger requests: a "
                "single engine on the local broker took 64 MLLP connections ~17% further with 1 "
                "(broker CPU per message -40%) and routed ~20% more (BENCHMARKS.md, session 10); "
                "routing 2,000 msg/s with job_topics route, the broker ~25% cheaper and the p50 "
                "29 against 40 ms, at 500 msg/s a p99 of 45 against 62 ms (session 37).",
                4, 1, 1024),
       make_int("replication_factor", "Replication factor of topics the engine creates.", 1, 1, 7),
       make_int("linger_ms",
                "How long the producer waits to batch records: lower means faster "
                "acknowledgements upstream, higher fewer requests. Measured (BENCHMARKS.md, "
                "MLLP): 0 gives one connection an ACK p50 of 0.47 ms instead of 1.7 ms, and 64 "
                "connections about 15% less throughput. Routing 2,000 messages/s, 0 cost the "
                "broker 13% more CPU per message and a p99 of 176 against 95 ms (session "
                "42); a site that routes that much on a small broker may prefer 5: the "
                "broker ~10% less CPU per routed message (session 31), each ACK ~4 ms later.",
                1, 0, 1000),
       make_choice("compression",
                   "Codec of the record batches every producer of the engine writes (canonical "
                   "events, tracking records, delivery jobs, and the records a Kafka connector "
                   "delivers, so that system's consumers must read it; every Kafka client "
                   "does). Consumers read any codec, so a change applies to new batches and "
                   "old ones stay readable. Routing 2,000 msg/s (BENCHMARKS.md, session 40), "
                   "lz4 wrote 4.1x fewer bytes than none (the ADT fan-out's jobs 7x) with the "
                   "engine ~4% dearer and the broker about as much cheaper; zstd 7x fewer, the "
                   "engine ~3% dearer again.",
                   "lz4", {"none", "lz4", "zstd", "snappy", "gzip"}),
       make_int("statistics_interval_ms",
                "How often the engine's producers (ingest, delivery outcomes, and each route "
                "stage's transactional one) take librdkafka's statistics for the "
                "budstikke_kafka_* metrics (where the time to Kafka's acknowledgement goes: "
                "waiting in the producer, the broker's round trip, requests in flight, records "
                "per request). 0 turns them off.",
                15000, 0, 3600000),
       make_int("busy_wait_pause_us",
                "librdkafka 2.0.2 (Debian's) waits for a timer less than 1 ms away by polling "
                "with no timeout until it is due, and a route's transactional producer arms two "
                "such timers in every transaction. The engine pauses that thread this long "
                "(microseconds) each time it sees it spin, so the timer fires at most this "
                "late instead of costing a millisecond of CPU (design note 56). 0 lets it "
                "spin. Measured (BENCHMARKS.md, session 43): librdkafka's CPU per "
                "transaction 2.0 -> 0.3-0.4 ms. Alone, with route_batch_ms 10: routing 100 "
                "msg/s the engine 36% cheaper per message, at 500 msg/s 22%; at 2,000 msg/s "
                "on two cores shared with the broker the transactions, no longer slowed by "
                "the spin, came up to 40% more often and the p99 was higher in 18 of 25 "
                "pairs. With route_batch_ms 15 (the defaults together) the p99 was lower at "
                "all three rates.",
                100, 0, 1000),
       str("topic_prefix", "Prefix for every topic name (several environments on one cluster).",
           ""),
       str("instance",
           "This engine's name among the engines that share one cluster and topic prefix. It "
           "names the route stage's transactional producers and the engine's static "
           "membership of its consumer groups, so it must be unique per running engine and the "
           "same after a restart: a restarted engine then fences the transactions the crashed "
           "one left open and takes its partitions back at once, without waiting out its "
           "session. An engine started under a name in use replaces the one running under it, "
           "which stops with exit code 1 and says why. Letters, digits, '.', '_' and '-'. "
           "Empty: the host name (set it where host names change with every start, as in "
           "containers).",
           ""),
       make_choice("static_membership",
                   "Join the route and delivery consumer groups as static members under "
                   "`instance`: a restarted engine has its partitions back at once (measured "
                   "0.8 s after a kill -9, against 7.7 s when the dead member's 10 s session must "
                   "time out first). The price: an engine that stops for good hands its "
                   "partitions on only after that session, and its groups' offsets cannot be "
                   "reset from outside until then.",
                   "true", {"true", "false"}),
       props}});
  auto privacy = make_spec(Spec{
      "privacy",
      "Pseudonymisation. Kafka keys are HMAC-SHA-256 of the patient identity under this key.",
      {secret(str("key_secret",
                  "The HMAC key. Use ${ENV_VAR} to keep it out of the file. Changing it changes "
                  "every key (and so partitioning) from then on.")),
       str("claim_check_dir", "Where bodies and attachments over the threshold are stored.",
           "var/claim-check"),
       make_int("claim_check_threshold", "Bytes above which a body travels as a claim check.",
                262144, 1024, 1LL << 32)}});
  Field modules;
  modules.name = "modules";
  modules.kind = Kind::kStringMap;
  modules.description = "Level per module, e.g. `bus: debug`.";
  auto logs = make_spec(Spec{
      "log",
      "Structured JSON logs on stderr; identity numbers are redacted.",
      {make_choice("level", "Default level.", "info", {"debug", "info", "warn", "error", "off"}),
       modules}});
  auto schemas = make_spec(
      Spec{"schemas",
           "The official KITH/e-helse XSDs used to validate e-meldinger.",
           {str("directory",
                "Folder with the XSDs (Sarepta layout: felleskomponenter/, dialogmelding/, ...). "
                "Empty or missing: XSD validation is off and the engine says so at start.",
                "")}});
  auto admin = make_spec(
      Spec{"admin",
           "The admin HTTP API (/healthz, /readyz, /metrics, /api/...). /metrics and /api need "
           "`Authorization: Bearer <token>`.",
           {str("host",
                "Address to listen on. Loopback by default; put a TLS proxy in front to "
                "expose it.",
                "127.0.0.1"),
            make_int("port", "Port; 0 picks a free one (printed at start), -1 turns the API off.",
                     8081, -1, 65535),
            secret(str("token",
                       "Bearer token for /metrics and /api. Empty: those answer 401 to everyone. "
                       "Use ${ENV_VAR}.",
                       ""))}});
  auto audit = make_spec(
      Spec{"audit",
           "The audit log: every action that reads or re-sends message content (track, consume, "
           "replay, the admin API), on the audit topic and in a local file.",
           {str("file", "Local append-only copy (JSON lines).", "var/audit.log"),
            str("actor",
                "Who is acting, for CLI commands (default: $BUDSTIKKE_ACTOR, else "
                "user@host).",
                "")}});
  auto delivery = make_spec(Spec{
      "delivery",
      "How routes hand their jobs to the delivery stage.",
      {make_choice("job_topics",
                   "Where a route writes its delivery jobs. `system`: one topic per receiving "
                   "system, deliver.<system>, so a route's transaction touches a partition per "
                   "system it sends to (an ADT fan-out to 21 systems: ~22). `route`: one topic "
                   "per route, jobs.<route>, keyed by patient, so a transaction touches a few; "
                   "a system whose jobs wait there over a second, or that holds "
                   "max_pending_per_system, gets them moved to deliver.<system> and read back "
                   "in order. Measured (BENCHMARKS.md, session 13): at 1,000 routed msg/s "
                   "`route` gave a p99 of 84 against 123 ms and 145 against 179 ms in two "
                   "series, and ~10% less broker CPU. A job read from jobs.<route> holds "
                   "that partition's commit point for every system of the route, so after a "
                   "crash more is read again; skip_delivered_lookback_s keeps what was "
                   "delivered from being sent again (kill -9 test, session 18 medians: 33 "
                   "duplicates with `route` in 23 runs, 36 with `system` in 7; without it "
                   "~1,500 and 392). "
                   "With `route` the delivery stage fetches a system's own topic only while "
                   "there are jobs in it (it checks every second for jobs another engine or "
                   "a replay wrote there): ~15% more routed msg/s and a broker 10-20% "
                   "cheaper than before (session 21). "
                   "The engine reads both kinds either way, so switching loses nothing.",
                   "system", {"system", "route"}),
       make_int("job_topic_partitions",
                "Partitions of the jobs.<route> topics the engine creates (job_topics "
                "route); 0: kafka.partitions. Partitions are how several engines share a "
                "route's deliveries; a single engine gains from fewer: a route's transaction "
                "then writes fewer partitions (librdkafka 2.0.2 sends a produce request per "
                "partition, and the broker verifies each and writes each a marker). Measured "
                "(BENCHMARKS.md, session 32), 1 against 4 with one engine at 2,000 routed "
                "msg/s, 11 pairs: the broker 12% cheaper per message (lower in 10), route "
                "transactions 8.0 against 9.2 ms, p50 29 against 34 ms, p99 within the noise. "
                "A topic that exists keeps its count, and a count only grows.",
                0, 0, 1024),
       make_int("max_pending_per_system",
                "Jobs a system may hold in memory (queued, waiting for a retry, being "
                "delivered). At this many its deliver.<system> partition is paused, and with "
                "job_topics route its further jobs move to deliver.<system>.",
                2000, 10, 1000000),
       make_int("skip_delivered_lookback_s",
                "After a crash the delivery stage reads again the jobs after its committed "
                "offsets, some of them delivered already. At start, when there are such "
                "jobs, it reads this many seconds of the tracking topic: a job recorded "
                "there as delivered (and that asks for no receipt) completes without being "
                "sent again. While running, it remembers for as long the ids of the jobs it "
                "delivered (at most 200,000): a second record of such a job (a message "
                "ingested twice, e.g. a file read again after a crash) is not sent; replays "
                "always are. 0 sends every such job again (at least once either way).",
                300, 0, 86400),
       make_int("io_threads",
                "Threads that send over HTTP, MLLP and Kafka, for all systems together "
                "(each system's connections live on one of them; file connectors have a "
                "thread per connection). Measured (BENCHMARKS.md, session 22): 1 thread "
                "gave the worst tail latency on 2 cores, 4 the best of 1, 2 and 4; session "
                "42 measured 2 against 4 again: the same CPU, a worse p99.",
                4, 1, 64),
       make_int("route_batch_ms",
                "A route writes the jobs of a batch of events in one Kafka transaction (with "
                "route_commit after_ack: one acknowledged write and one offset commit). The "
                "batch closes this long after its first event was written to Kafka (as a "
                "producer's linger), or at route_batch_max events. Shorter: lower latency, "
                "more transactions (each costs the broker 1.5-3 ms of CPU and, with librdkafka "
                "2.0.2, the engine about as much again without kafka.busy_wait_pause_us). "
                "Measured (BENCHMARKS.md, session 43), 15 ms with busy_wait_pause_us 100 "
                "against the earlier 10 ms without: at 2,000 routed msg/s a healthy p99 of 76 "
                "against 112 ms (lower in 8 of 8 pairs), the engine 7% and the broker 3% "
                "cheaper per message; at 500 msg/s p99 26 against 39 ms, engine -33%; at 100 "
                "msg/s the engine -51% and the broker -17%, p99 21 against 23 ms; the p50 "
                "~3 ms longer at the low rates (18 against 14-15 ms). Longer still where CPU "
                "matters more than latency at low rates (session 42: 50 against 10 ms at 100 "
                "msg/s halved both processes' CPU, p99 ~25 -> ~60 ms).",
                15, 0, 1000),
       make_int("route_batch_max", "Most events in one route batch.", 500, 1, 100000),
       make_choice("route_commit",
                   "How a route makes its jobs and its consumed offsets durable together. "
                   "`transaction`: the jobs, their tracking records and the offsets in one "
                   "Kafka transaction (exactly once within Kafka: a batch is written whole or "
                   "not at all). `after_ack`: the jobs are written by an idempotent producer "
                   "and the offsets committed once Kafka has acknowledged every record of "
                   "the batch (at least once: after a crash between the two the batch is "
                   "routed again and its jobs written twice; they carry the same job ids, "
                   "and the delivery stage does not send a job it delivered already, within "
                   "skip_delivered_lookback_s). No transaction round trips, no commit "
                   "markers. Measured (BENCHMARKS.md, session 44) at 2,000 routed msg/s: a "
                   "healthy p99 of 29.5 against 61.5 ms (lower in 8 of 8 pairs), p50 15 "
                   "against 21 ms, the broker 23% and the engine 4% cheaper per message; at "
                   "500 msg/s p99 20 against 25 ms, the broker 33% cheaper; unpaced 6% more "
                   "routed msg/s. The AppRec route (one receipt per message, ever) keeps its "
                   "transaction.",
                   "transaction", {"transaction", "after_ack"}),
       make_int("route_idle_commit_ms",
                "A route batch that lets no event through writes nothing; its offsets are "
                "committed at most this often (and when the route stops; the next batch "
                "that writes records commits them too). A route that filters out a busy topic "
                "would otherwise commit once per batch (up to ~66 a second at "
                "route_batch_ms 15). After a crash such events are read again and let "
                "through by nothing again. 0: every batch commits.",
                1000, 0, 600000)}});
  Field sources;
  sources.name = "sources";
  sources.kind = Kind::kObjectList;
  sources.description =
      "Inbound sources (folder, http, mllp); each entry is validated by its "
      "own declared spec.";
  auto engine = Spec{
      "engine.yaml",
      "Engine configuration.",
      {make_object("kafka", "Kafka cluster connection.", kafka),
       make_object("privacy", "Pseudonymisation and claim-check store.", privacy),
       make_object("log", "Logging.", logs), make_object("schemas", "XSD directory.", schemas),
       str("routes", "Folder with route definitions (*.yaml).", "routes"),
       str("systems", "The registry of connected systems.", "systems.yaml"),
       make_object("admin", "Admin HTTP API.", admin), make_object("audit", "Audit log.", audit),
       sources, make_object("delivery", "Delivery job topics.", delivery)}};
  engine.at("privacy").required = true;
  return engine;
}

Spec build_engine_spec() {
  Spec engine = build_engine_spec_fields();
  // privacy.key_secret: required, at least 16 characters (it keys the patient hash).
  Field& privacy_field = engine.at("privacy");
  auto privacy = std::make_shared<Spec>(*privacy_field.object);
  privacy->at("key_secret").required = true;
  privacy->at("key_secret").min_length = 16;
  privacy_field.object = privacy;
  return engine;
}

std::string map_protocol(const std::string& p) {
  if (p == "ssl") return "ssl";
  if (p == "sasl_plaintext") return "sasl_plaintext";
  if (p == "sasl_ssl") return "sasl_ssl";
  return "plaintext";
}

}  // namespace

bool valid_instance_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
  });
}

std::string host_instance_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "0";
  return buf;
}

const Spec& engine_spec() {
  static const Spec kSpec = build_engine_spec();
  return kSpec;
}

std::string resolve_path(const EngineConfig& c, const std::string& p) {
  if (p.empty()) return p;
  const std::filesystem::path path(p);
  if (path.is_absolute()) return p;
  return (std::filesystem::path(c.base_dir) / path).lexically_normal().string();
}

EngineConfig load_engine_config(const std::string& file, Diagnostics& d) {
  EngineConfig c;
  c.file = file;
  c.base_dir = std::filesystem::absolute(file).parent_path().string();
  YAML::Node root = load_yaml_file(file, d);
  if (!root) return c;
  expand_environment(root, file, "", d);
  const Spec& spec = engine_spec();
  validate(root, spec, file, "", d);
  // kafka.instance names Kafka clients: checked here, with the other problems.
  if (const YAML::Node k = root["kafka"];
      k && k.IsMap() && k["instance"] && k["instance"].IsScalar()) {
    if (const std::string v = k["instance"].Scalar(); !v.empty() && !valid_instance_name(v))
      d.error(file, k["instance"].Mark(), "kafka.instance",
              "'" + v + "' is not an instance name: 1-64 letters, digits, '.', '_' or '-'");
  } else if (!valid_instance_name(host_instance_name())) {
    d.error(file, k ? k.Mark() : YAML::Mark(), "kafka.instance",
            "the host name '" + host_instance_name() +
                "' is not an instance name (1-64 letters, digits, '.', '_' or '-'); set "
                "kafka.instance");
  }
  // Every producer takes its codec from kafka.compression, over any property.
  if (const YAML::Node k = root["kafka"];
      k && k.IsMap() && k["properties"] && k["properties"].IsMap())
    for (const auto& kv : k["properties"])
      if (const std::string key = kv.first.Scalar();
          key == "compression.codec" || key == "compression.type")
        d.error(file, kv.first.Mark(), "kafka.properties." + key,
                "set kafka.compression instead (one codec for every producer of the engine)");
  if (d.has_errors()) return c;

  const YAML::Node kafka = root["kafka"];
  const Spec& ks = *spec.find("kafka")->object;
  auto& props = c.kafka.properties;
  props["bootstrap.servers"] = get_string(kafka, ks, "bootstrap_servers");
  props["client.id"] = get_string(kafka, ks, "client_id");
  props["security.protocol"] = map_protocol(get_string(kafka, ks, "security_protocol"));
  if (kafka && kafka["tls"]) {
    const auto& ts = *ks.find("tls")->object;
    const YAML::Node t = kafka["tls"];
    if (auto v = get_string(t, ts, "ca_file"); !v.empty()) props["ssl.ca.location"] = v;
    if (auto v = get_string(t, ts, "cert_file"); !v.empty()) props["ssl.certificate.location"] = v;
    if (auto v = get_string(t, ts, "key_file"); !v.empty()) props["ssl.key.location"] = v;
    if (auto v = get_string(t, ts, "key_password"); !v.empty()) props["ssl.key.password"] = v;
    props["ssl.endpoint.identification.algorithm"] =
        get_string(t, ts, "verify_hostname") == "true" ? "https" : "none";
  }
  if (kafka && kafka["sasl"]) {
    const auto& ss = *ks.find("sasl")->object;
    const YAML::Node s = kafka["sasl"];
    props["sasl.mechanisms"] = get_string(s, ss, "mechanism");
    if (auto v = get_string(s, ss, "username"); !v.empty()) props["sasl.username"] = v;
    if (auto v = get_string(s, ss, "password"); !v.empty()) props["sasl.password"] = v;
  }
  if (kafka && kafka["properties"])
    for (const auto& kv : kafka["properties"]) props[kv.first.Scalar()] = kv.second.Scalar();
  c.kafka.default_partitions = static_cast<int>(get_int(kafka, ks, "partitions"));
  c.kafka.default_replication = static_cast<int>(get_int(kafka, ks, "replication_factor"));
  c.kafka.linger_ms = static_cast<int>(get_int(kafka, ks, "linger_ms"));
  c.kafka.compression = get_string(kafka, ks, "compression");
  c.kafka.statistics_interval_ms = static_cast<int>(get_int(kafka, ks, "statistics_interval_ms"));
  c.kafka.busy_wait_pause_us = static_cast<int>(get_int(kafka, ks, "busy_wait_pause_us"));
  c.topic_prefix = get_string(kafka, ks, "topic_prefix");
  c.instance = get_string(kafka, ks, "instance");
  if (c.instance.empty()) c.instance = host_instance_name();
  c.static_membership = get_string(kafka, ks, "static_membership") == "true";

  const YAML::Node privacy = root["privacy"];
  const Spec& ps = *spec.find("privacy")->object;
  c.key_secret = get_string(privacy, ps, "key_secret");
  c.claim_check_dir = resolve_path(c, get_string(privacy, ps, "claim_check_dir"));
  c.claim_check_threshold = get_int(privacy, ps, "claim_check_threshold");

  const Spec& ls = *spec.find("log")->object;
  c.log_level = get_string(root["log"], ls, "level");
  if (root["log"] && root["log"]["modules"])
    for (const auto& kv : root["log"]["modules"]) {
      const std::string lvl = kv.second.Scalar();
      if (lvl != "debug" && lvl != "info" && lvl != "warn" && lvl != "error" && lvl != "off")
        d.error(file, kv.second.Mark(), "log.modules." + kv.first.Scalar(),
                "'" + lvl + "' is not one of: debug, info, warn, error, off");
      c.log_modules[kv.first.Scalar()] = lvl;
    }
  c.schema_dir =
      resolve_path(c, get_string(root["schemas"], *spec.find("schemas")->object, "directory"));
  c.routes_dir = resolve_path(c, get_string(root, spec, "routes"));
  c.systems_file = resolve_path(c, get_string(root, spec, "systems"));
  const Spec& as = *spec.find("admin")->object;
  c.admin_host = get_string(root["admin"], as, "host");
  c.admin_port = static_cast<int>(get_int(root["admin"], as, "port"));
  c.admin_token = get_string(root["admin"], as, "token");
  const Spec& us = *spec.find("audit")->object;
  c.audit_file = resolve_path(c, get_string(root["audit"], us, "file"));
  c.audit_actor = get_string(root["audit"], us, "actor");
  c.sources = root["sources"];
  const Spec& dls = *spec.find("delivery")->object;
  c.jobs_per_route = get_string(root["delivery"], dls, "job_topics") == "route";
  c.job_topic_partitions = static_cast<int>(get_int(root["delivery"], dls, "job_topic_partitions"));
  c.max_pending_per_system =
      static_cast<int>(get_int(root["delivery"], dls, "max_pending_per_system"));
  c.skip_delivered_lookback =
      std::chrono::seconds(get_int(root["delivery"], dls, "skip_delivered_lookback_s"));
  c.delivery_io_threads = static_cast<int>(get_int(root["delivery"], dls, "io_threads"));
  c.route_batch_ms = static_cast<int>(get_int(root["delivery"], dls, "route_batch_ms"));
  c.route_batch_max = static_cast<int>(get_int(root["delivery"], dls, "route_batch_max"));
  c.route_idle_commit =
      std::chrono::milliseconds(get_int(root["delivery"], dls, "route_idle_commit_ms"));
  c.route_commit_after_ack = get_string(root["delivery"], dls, "route_commit") == "after_ack";
  return c;
}

}  // namespace budstikke::config
