#pragma once
// The audit log: who read or re-sent which messages, when, and about which patients.
//
// Every action that reads or re-sends message content (track, consume, replay, the admin
// API's message and DLQ endpoints) appends one record, before the content is shown or sent,
// to a local file (JSON lines, fsync'd) and to the audit topic. Patients appear only as
// patient_ref pseudonyms (a keyed hash of the identity number), so `budstikke audit
// --patient <number>` can find them without the number being stored anywhere.

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/config/engine_config.hpp"
#include "engine/core/result.hpp"

namespace budstikke::ops {

struct AuditEntry {
  std::string actor;   // user@host, or admin-api@<address>
  std::string action;  // track, consume, replay, api.message, api.dlq, ...
  std::string message_id;
  std::string system;
  std::string detail;
  std::set<std::string> patient_refs;
  int64_t count = 0;  // messages read or re-sent
};

class AuditLog {
 public:
  // `producer` may be null: one is made on first use.
  AuditLog(const config::EngineConfig& cfg, bus::Producer* producer = nullptr);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writes the file first (the action is refused when that fails), then the topic (a
  // failure there is returned too; the file keeps the record).
  Status record(const AuditEntry& e);

 private:
  const config::EngineConfig& cfg_;
  bus::Producer* producer_;
  std::unique_ptr<bus::Producer> own_;
};

// Who runs this CLI command: the configured actor, else $BUDSTIKKE_ACTOR, else user@host.
std::string cli_actor(const config::EngineConfig& cfg);

// Audit records that concern the patient, from the local file and the audit topic (each
// once), oldest first. `from_topic`/`from_file` choose the places read.
struct AuditQuery {
  std::string patient_ref;
  bool from_topic = true;
  bool from_file = true;
};
struct AuditFindings {
  std::vector<nlohmann::json> records;
  std::vector<std::string> warnings;  // a place that could not be read
};
Result<AuditFindings> find_audit(const config::EngineConfig& cfg, const AuditQuery& q);

}  // namespace budstikke::ops
