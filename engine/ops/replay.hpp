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
// From route.failed (`route_failed`): each selected failure's event (the record holds it)
// goes through its route again, as the routes directory and the registry file have it now
// (after the route or the registry was mended; the running engine's registry is not asked,
// so the two always agree), and its jobs are produced to deliver.<system>: to the system that
// failed, or, where the event as a whole failed, to every destination the first pass made
// no job for. An event that fails again is written to route.failed again (so nothing is
// lost and a later replay can take it) and reported; a whole replay marks route.failed
// replayed up to its end, as for a DLQ.
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
  bool route_failed = false;         // from route.failed, routed again
  std::string route;                 // with route_failed: only this route's failures
  bool dry_run = false;              // list what would be replayed, send nothing
  std::string actor;
};

struct ReplayedItem {
  std::string system;  // destination
  std::string from;    // dlq.<system>:partition:offset, route.failed:partition:offset, or
                       // canonical.<type>
  std::string message_id;
  std::string job_id;
  std::string reason;     // why it was dead-lettered (in not_replayed: why not replayed)
  std::string failed_at;  // when
};

struct ReplayReport {
  std::vector<ReplayedItem> items;
  // Selected but not sent: a system no longer in the registry, a route no longer there or
  // whose filter now lets the event pass by, a record that holds no event, or an event that
  // failed again (failed_again counts those; they are on route.failed again).
  std::vector<ReplayedItem> not_replayed;
  int64_t failed_again = 0;
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
