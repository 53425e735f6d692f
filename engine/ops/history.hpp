#pragma once
// A message's history from the tracking topic: every state (received or rejected, routed,
// each delivery attempt, dead letters, replays, receipts) in time order. Used by
// `budstikke track` and the admin API (/api/messages/{id}). Routing metadata only.

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/engine_config.hpp"
#include "engine/core/result.hpp"

namespace budstikke::ops {

struct History {
  std::vector<nlohmann::json> states;  // sorted by "at"
  std::set<std::string> patient_refs;  // pseudonyms of the patients concerned (for the audit)
  std::set<std::string> event_ids;
  int64_t scanned = 0;  // tracking records read
};

// `id` is a message id (KITH MsgId, HL7 MSH-10), an event id or a conversation ref. The
// tracking topic is read to its current end. An error when Kafka is unreachable or the
// engine never ran (no tracking topic); an empty history when nothing is known.
Result<History> message_history(const config::EngineConfig& cfg, const std::string& id);

// One line per state: when, what, where, why (identity numbers redacted).
std::string describe_state(const nlohmann::json& state);

}  // namespace budstikke::ops
