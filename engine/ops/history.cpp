#include "engine/ops/history.hpp"

#include <algorithm>
#include <chrono>

#include "engine/bus/bus.hpp"
#include "engine/core/redact.hpp"
#include "engine/runtime/ingest.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::ops {

using json = nlohmann::json;

Result<History> message_history(const config::EngineConfig& cfg, const std::string& id) {
  const std::string topic = cfg.topic_prefix + runtime::kTrackingTopic;
  auto existing = bus::list_topics(cfg.kafka, std::chrono::milliseconds(5000));
  if (!existing)
    return Error::transient(
        ErrorDomain::kKafka,
        "Kafka at " + cfg.kafka.bootstrap() + " is not reachable: " + existing.error().message);
  if (std::find(existing->begin(), existing->end(), topic) == existing->end())
    return Error::permanent(ErrorDomain::kKafka,
                            "no tracking topic '" + topic + "' (has the engine run?)");
  // The message's tracking key; its event ids are learnt from the records as they come (a
  // route's record names the event; the delivery records name the event only).
  const std::string key = runtime::tracking_key(id, cfg.key_secret);
  History h;
  h.event_ids.insert(id);
  std::vector<json> later;  // records naming an event id before it was learnt
  auto st = bus::scan_topics(cfg.kafka, {topic}, [&](const bus::Message& m) {
    ++h.scanned;
    json t = json::parse(m.value(), nullptr, false);
    if (!t.is_object()) return true;
    const std::string event_id = t.value("event_id", "");
    // A receipt that answers the message belongs to its history, not the receipt's own
    // event ids (which would pull in the receipt's routing).
    if (t.value("in_reply_to", "") == id && t.value("message_id", "") != id) {
      h.states.push_back(std::move(t));
      return true;
    }
    const bool mine = m.key() == key || t.value("message_id", "") == id ||
                      t.value("conversation_ref", "") == id || h.event_ids.count(event_id) > 0;
    if (mine) {
      if (!event_id.empty()) h.event_ids.insert(event_id);
      h.states.push_back(std::move(t));
    } else if (!event_id.empty()) {
      later.push_back(std::move(t));
    }
    return true;
  });
  if (!st) return st.error();
  // Partitions are read one after another: a record on another partition may name an event
  // learnt later.
  for (auto& t : later)
    if (h.event_ids.count(t.value("event_id", ""))) h.states.push_back(std::move(t));
  std::stable_sort(h.states.begin(), h.states.end(), [](const json& a, const json& b) {
    return a.value("at", "") < b.value("at", "");
  });
  for (const auto& t : h.states)
    if (t.contains("patient_ref") && t["patient_ref"].is_string())
      h.patient_refs.insert(t["patient_ref"].get<std::string>());
  return h;
}

std::string describe_state(const json& t) {
  const std::string state = t.value("state", "?");
  std::string line = t.value("at", "?") + "  " + state;
  auto add = [&](const char* key, const char* label) {
    const std::string v = t.contains(key) && t.at(key).is_string() ? t.value(key, "") : "";
    if (!v.empty()) line += std::string(" ") + label + v;
  };
  add("channel", "via ");
  add("type", "as ");
  add("route", "route ");
  add("system", "to ");
  add("code", "code ");
  add("by", "by ");
  if (t.contains("in_reply_to") && t.value("message_id", "") != "") {
    line += " answering " + t.value("in_reply_to", "");
    const std::string st = t.value("receipt_status", "");
    if (!st.empty())
      line += std::string(" status ") + st + (st == "1" ? " (OK)" : st == "2" ? " (rejected)" : "");
    if (auto er = t.find("receipt_errors"); er != t.end() && er->is_array() && !er->empty()) {
      std::string codes;
      for (const auto& x : *er) codes += (codes.empty() ? "" : ",") + x.get<std::string>();
      line += " errors " + codes;
    }
  }
  if (t.contains("attempts") && t.at("attempts").is_number())
    line += " (attempt " + std::to_string(t.value("attempts", 0)) + ")";
  if (t.contains("latency_ms") && t.at("latency_ms").is_number())
    line += " " + std::to_string(t.value("latency_ms", 0L)) + " ms after ingest";
  if (auto d = t.find("destinations"); d != t.end() && d->is_array()) {
    std::string to;
    for (const auto& x : *d) to += (to.empty() ? "" : ", ") + x.value("system", "?");
    line += " -> [" + to + "]";
  }
  if (auto f = t.find("failures"); f != t.end() && f->is_array())
    for (const auto& x : *f) line += "; not routed: " + x.value("reason", "?");
  // e-meldinger: whether the XSDs checked it (off per source, or without the schemas).
  if (state == "received" && t.value("format", "") == "kith" && t.contains("validated") &&
      t.at("validated").is_boolean())
    line += t.at("validated").get<bool>() ? " (XSD-validated)" : " (not XSD-validated)";
  for (const char* key : {"reason", "detail"})
    if (t.contains(key) && t.at(key).is_string() && !t.value(key, "").empty())
      line += ": " + t.value(key, "");
  // Which engine (kafka.instance) took the step, where several share the work.
  if (t.contains("engine") && t.at("engine").is_string() && !t.value("engine", "").empty())
    line += " [on " + t.value("engine", "") + "]";
  return redact_identity_numbers(line);
}

}  // namespace budstikke::ops
