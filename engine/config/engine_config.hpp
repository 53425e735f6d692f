#pragma once
// engine.yaml: how the engine reaches Kafka, its privacy key, schema directory, logging
// and the sources it runs. Declared once in engine_spec(); loaded by load_engine_config().

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/bus/bus.hpp"
#include "engine/config/spec.hpp"

namespace budstikke::config {

const Spec& engine_spec();

// YAML::Node (sources) assigns without noexcept; a config is assigned when it is loaded or
// reloaded, where an exception is reported.
// NOLINTNEXTLINE(bugprone-exception-escape)
struct EngineConfig {
  std::string file;      // the engine.yaml this came from
  std::string base_dir;  // its directory: relative paths resolve against it
  bus::KafkaSettings kafka;
  std::string topic_prefix;
  std::string instance;           // kafka.instance, the host name when not set
  bool static_membership = true;  // kafka.static_membership
  std::string key_secret;         // HMAC key for Kafka keys; never logged
  std::string schema_dir;         // KITH XSDs; empty: validation off (with a warning)
  std::string log_level = "info";
  std::map<std::string, std::string> log_modules;
  std::string routes_dir;
  std::string systems_file;
  std::string claim_check_dir;
  int64_t claim_check_threshold = int64_t{256} * 1024;
  std::string admin_host = "127.0.0.1";
  int admin_port = 8081;  // 0: any free port; -1: off
  std::string admin_token;
  std::string audit_file;
  std::string audit_actor;
  YAML::Node sources;            // validated against source specs by the source registry
  bool jobs_per_route = false;   // delivery.job_topics: route
  int job_topic_partitions = 0;  // delivery.job_topic_partitions; 0: kafka.partitions
  int max_pending_per_system = 2000;
  std::chrono::seconds skip_delivered_lookback{300};  // delivery.skip_delivered_lookback_s
  int delivery_io_threads = 4;                        // delivery.io_threads
  int route_batch_ms = 15;                            // delivery.route_batch_ms
  int route_batch_max = 500;                          // delivery.route_batch_max
  std::chrono::milliseconds route_idle_commit{1000};  // delivery.route_idle_commit_ms
  bool route_commit_after_ack = false;                // delivery.route_commit: after_ack
};

// Loads, expands ${ENV} references, validates against engine_spec() and returns the config.
// Every problem is added to diags; the result is meaningful only without errors.
EngineConfig load_engine_config(const std::string& file, Diagnostics& diags);

// kafka.instance: 1-64 of [A-Za-z0-9._-].
bool valid_instance_name(std::string_view name);
// The default kafka.instance: this host's name ("0" when it has none).
std::string host_instance_name();

// Resolves a path relative to the config file's directory (absolute paths unchanged).
std::string resolve_path(const EngineConfig& c, const std::string& p);

}  // namespace budstikke::config
