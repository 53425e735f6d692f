#pragma once
// Replay: dead letters back to delivery, or one message to one system.
//
// From the DLQ: the selected records of dlq.<system> (all systems, some, by message id, by
// the time they failed) are produced again to deliver.<system> with their original payload
// and headers (the idempotency key unchanged, so receivers can drop a copy they already
// have), a fresh attempt count, and bs-replay-of naming the dead letter. A replay of a whole
// DLQ (no message or time filter) also moves the replay group's offset to its end: that is
// what DLQ depth (in the metrics and /api/dlq) counts from.
//
// One message to one system (`to_system`): the message's canonical event is read from its
// canonical topic and rendered for that system as a route would (the first of kith,
// hl7v2, json it accepts), then produced to deliver.<system>.
//
// Every replay, and every dry run of one, is recorded in the audit log first.

#include <optional>
#include <string>
#include <vector>

#include "engine/config/engine_config.hpp"
#include "engine/core/result.hpp"
#include "engine/ops/audit.hpp"
#include "engine/registry/registry.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::ops {

struct ReplayRequest {
  std::vector<std::string> systems;  // DLQs to read; empty with all=false: an error
  bool all = false;                  // every system's DLQ
  std::string message_id;            // only this message (message id, event id or job id)
  std::optional<int64_t> since_ms;   // failed at or after (epoch ms)
  std::optional<int64_t> until_ms;   // failed before
  std::string to_system;             // one message to one system (needs message_id)
  bool dry_run = false;              // list what would be replayed, send nothing
  std::string actor;
};

struct ReplayedItem {
  std::string system;  // destination
  std::string from;    // dlq.<system>:partition:offset, or canonical.<type>:partition:offset
  std::string message_id;
  std::string job_id;
  std::string reason;     // why it was dead-lettered
  std::string failed_at;  // when
};

struct ReplayReport {
  std::vector<ReplayedItem> items;
  int64_t scanned = 0;
  bool dry_run = false;
};

// The consumer group whose committed offsets mark what of each DLQ was replayed.
std::string replay_group(const std::string& topic_prefix);

Result<ReplayReport> replay(const config::EngineConfig& cfg, const registry::Registry& reg,
                            const runtime::CodecRegistry& codecs, const ReplayRequest& req,
                            AuditLog& audit, bus::Producer* producer = nullptr);

// Dead letters not replayed yet, per system (systems without any are left out).
struct DlqDepth {
  std::string system;
  int64_t depth = 0;  // not replayed yet
  int64_t total = 0;  // on the topic
};
Result<std::vector<DlqDepth>> dlq_depths(const config::EngineConfig& cfg,
                                         const std::vector<std::string>& systems);

// Parses 2026-11-22T10:00:00Z, 2026-11-22T10:00:00+01:00, 2026-11-22 (UTC midnight), or a
// duration back from now: 30m, 2h, 7d.
std::optional<int64_t> parse_time_ms(const std::string& text);

}  // namespace budstikke::ops
