#pragma once
// The registry of connected systems (config/systems.yaml): who they are (HER-ids,
// organisation numbers), what they accept, how to reach them (connector URL, TLS, timeouts),
// and how deliveries to them behave (concurrency, rate limit, retries, ordering, circuit
// breaker, receipts).
//
// systems.yaml holds `defaults`, explicit `systems`, and `groups`: a template plus a table of
// rows, so a region's ~200 systems are described in a few readable lines. Every problem is
// reported at once as file:line:col, at the template's position for generated systems, with
// the row that produced them.
//
// A Registry is immutable once loaded; share it as shared_ptr<const Registry>.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/spec.hpp"

namespace budstikke::registry {

struct RetryPolicy {
  int max_attempts = 5;  // including the first
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 300000;
  int multiplier_percent = 200;  // each wait is the previous one times this / 100
  int jitter_percent = 20;       // +- this share of each wait, at random
  // The wait before attempt `attempt` (2 = the first retry), jitter not applied.
  int64_t backoff_ms(int attempt) const;
  // The same with the jitter: uniform within +- jitter_percent of it, at least 1 ms.
  int64_t wait_ms(int attempt, std::mt19937_64& rng) const;
};

struct BreakerPolicy {
  int failure_threshold = 5;  // consecutive failures that open the circuit
  int64_t open_ms = 30000;    // how long it stays open before one trial request
};

struct TlsSettings {
  std::string ca_file;    // trust these CAs (empty: system default)
  std::string cert_file;  // client certificate (mutual TLS)
  std::string key_file;
  bool verify = true;
};

struct Connector {
  // http | https | mllp | mllps | file | kafka, taken from the URL's scheme.
  std::string type;
  std::string url;
  std::string host;  // http(s), mllp(s)
  int port = 0;
  std::string path;  // http(s): request target; file: directory; kafka: topic
  TlsSettings tls;
  int64_t timeout_ms = 30000;
  int64_t connect_timeout_ms = 5000;
  std::map<std::string, std::string> headers;  // http: extra request headers
  std::string file_suffix;                     // file: empty = by format (.xml, .hl7, .json)
  bool tls_enabled() const { return type == "https" || type == "mllps"; }
};

enum class Ordering { kPerPatient, kNone };

struct System {
  std::string id;
  std::string name;
  std::string kind;  // hospital, department, gp, municipality, lab, national, other
  std::vector<std::string> her_ids;
  std::vector<std::string> org_numbers;
  std::vector<std::string> accepts;  // kith/<type>/<version>, kith/*, hl7v2/<version>, json
  std::vector<std::string> tags;
  Connector connector;
  int concurrency = 4;
  int rate_limit = 0;  // deliveries per second, 0 = unlimited
  RetryPolicy retry;
  BreakerPolicy breaker;
  Ordering ordering = Ordering::kPerPatient;
  std::string receipts = "apprec";  // apprec | ack | none: whether it gets receipts
  bool enabled = true;
  // Where it was declared (for diagnostics).
  std::string file;
  int line = 0;
  int column = 0;
  std::string origin;  // "systems[3]" or "groups[1] row 7"

  // Whether the system accepts this format ("kith/epikrise/1.2", "hl7v2/2.5", "json").
  bool accepts_format(const std::string& format) const;
  // The view routes see: system("id").her_ids etc.
  nlohmann::json to_json() const;
};

class Registry {
 public:
  // Loads and validates systems.yaml; every problem goes to diags. On errors the result is
  // partial and must not be used.
  static std::shared_ptr<const Registry> load(const std::string& file, config::Diagnostics& diags);
  // Builds a registry from YAML text (tests); `file` names it in diagnostics.
  static std::shared_ptr<const Registry> parse(const std::string& text, const std::string& file,
                                               config::Diagnostics& diags);

  const std::vector<System>& systems() const { return systems_; }
  const System* find(const std::string& id) const;
  // The system that answers for a HER-id or an organisation number.
  const System* owner_of_her(const std::string& her_id) const;
  const System* owner_of_org(const std::string& org_number) const;
  // system("id") in route expressions: null when unknown.
  const nlohmann::json& json_of(const std::string& id) const;
  const std::string& file() const { return file_; }
  // Unique among the registries of this process (a loaded or reloaded registry gets a new
  // one): what caches of values computed from a registry are keyed by.
  uint64_t serial() const { return serial_; }

 private:
  static uint64_t next_serial();
  uint64_t serial_ = next_serial();
  std::string file_;
  std::vector<System> systems_;
  std::map<std::string, size_t> by_id_;
  std::map<std::string, size_t> by_her_;
  std::map<std::string, size_t> by_org_;
  std::vector<nlohmann::json> json_;
  friend struct RegistryBuilder;
};

// The declared spec of one system entry (docs/config.md, lint).
const config::Spec& system_spec();
const config::Spec& systems_file_spec();

}  // namespace budstikke::registry
