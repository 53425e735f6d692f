#include "engine/runtime/topics.hpp"

#include "engine/event/event.hpp"

namespace budstikke::runtime {

std::vector<bus::TopicSpec> core_topics(const std::string& prefix) {
  std::vector<bus::TopicSpec> out;
  for (int t = 0; t <= static_cast<int>(EventType::kOther); ++t)
    out.push_back({prefix + canonical_topic(static_cast<EventType>(t)), -1, -1, {}});
  out.push_back({prefix + kRejectedTopic, -1, -1, {{"retention.ms", "2592000000"}}});
  // One record per state of a message, keyed by its tracking key. Not compacted: `track`
  // shows every state, so each must stay (90 days). One partition: `track` reads the topic
  // whole and no consumer group shares it out, while every message writes to it at every
  // stage - and librdkafka sends one produce request per partition, so four partitions
  // meant four small requests where one does (design note 26).
  out.push_back({prefix + kTrackingTopic, 1, -1, {{"retention.ms", "7776000000"}}});
  out.push_back({prefix + kAuditTopic, 1, -1, {{"retention.ms", "-1"}}});
  // Receipts waiting to go back to senders, keyed by (original message, receiver): one each.
  out.push_back({prefix + "apprec.outbound", -1, -1, {}});
  // Which (message, addressee) pairs were answered: compacted, kept a year.
  out.push_back({prefix + "apprec.sent",
                 -1,
                 -1,
                 {{"cleanup.policy", "compact,delete"}, {"retention.ms", "31536000000"}}});
  return out;
}

}  // namespace budstikke::runtime
