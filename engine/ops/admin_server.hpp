#pragma once
// The admin HTTP API (Boost.Beast), on loopback by default.
//
//   GET  /healthz                 200 while the process runs (no token)
//   GET  /readyz                  200 when Kafka is reachable and the routes are loaded, else 503
//   GET  /metrics                 Prometheus text format
//   GET  /api/messages/{id}       the message's history from the tracking topic
//   GET  /api/dlq                 dead letters per system: not replayed yet, and in all
//   GET  /api/dlq?system=ID       the dead letters of one system (metadata, no content)
//   POST /api/dlq/replay          {"system": ID | "all": true, "message_id", "since", "until",
//                                  "to", "dry_run"}: as `budstikke replay`
//   GET  /api/routes              routes, stages and the last reload
//   POST /api/routes/reload       reload routes and systems.yaml (as SIGHUP); 200 applied,
//                                 422 refused with the errors (the running config stays)
//
// Everything but /healthz and /readyz needs `Authorization: Bearer <admin.token>`; without
// a configured token those answer 401 to everyone. Reads of message history and dead
// letters, and replays, are recorded in the audit log first. No response carries an
// identity number: bodies pass through redact_identity_numbers().

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/config/engine_config.hpp"
#include "engine/ops/audit.hpp"
#include "engine/registry/registry.hpp"
#include "engine/runtime/codec.hpp"
#include "engine/runtime/engine.hpp"

namespace budstikke::ops {

struct AdminHooks {
  runtime::EngineControl* control = nullptr;
  // The registry in use (replaced on reload); null when the engine only ingests.
  std::function<std::shared_ptr<const registry::Registry>()> registry;
  // Consumer groups and their topics, for the lag gauge.
  std::function<std::vector<std::pair<std::string, std::vector<std::string>>>()> groups;
  const runtime::CodecRegistry* codecs = nullptr;
};

class AdminServer final : public runtime::Stage {
 public:
  AdminServer(const config::EngineConfig& cfg, AdminHooks hooks, bus::Producer& producer);
  ~AdminServer() override;
  std::string name() const override;
  Status start() override;
  void stop() override;
  int port() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace budstikke::ops
