#pragma once
// The topics the engine owns, with their settings.

#include <string>
#include <vector>

#include "engine/bus/bus.hpp"

namespace budstikke::runtime {

inline constexpr const char* kRejectedTopic = "ingest.rejected";
inline constexpr const char* kTrackingTopic = "tracking";
inline constexpr const char* kAuditTopic = "audit";

// canonical.<type> for every event type, ingest.rejected, tracking (90 days) and audit,
// each name with the configured prefix.
std::vector<bus::TopicSpec> core_topics(const std::string& prefix);

inline std::string topic_name(const std::string& prefix, const std::string& name) {
  return prefix + name;
}

}  // namespace budstikke::runtime
