// budstikke track ID: a message's history from the tracking topic: received or rejected
// (why), routed to whom, every delivery attempt and its outcome, receipts. ID is a message
// id (MsgId, MSH-10) or an event id. Prints routing metadata only, never patient data.
//
// The tracking topic is read from the beginning and filtered (a compacted topic, small next
// to the message topics); an index over it belongs with the admin API (#6).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/cli/commands.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/redact.hpp"
#include "engine/runtime/ingest.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::cli {

namespace {

using json = nlohmann::json;

// One line per state: when, what, where, why.
std::string describe(const json& t) {
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
  for (const char* key : {"reason", "detail"})
    if (t.contains(key) && t.at(key).is_string() && !t.value(key, "").empty())
      line += ": " + t.value(key, "");
  return redact_identity_numbers(line);
}

}  // namespace

int cmd_track(const Args& args) {
  std::string file = "config/engine.yaml";
  std::string id;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-c" || args[i] == "--config") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "budstikke track: %s needs a file\n", args[i].c_str());
        return 2;
      }
      file = args[++i];
    } else if (!args[i].empty() && args[i][0] == '-') {
      std::fprintf(stderr, "budstikke track: unknown option %s\n", args[i].c_str());
      return 2;
    } else if (id.empty()) {
      id = args[i];
    } else {
      std::fprintf(stderr, "budstikke track: one id at a time\n");
      return 2;
    }
  }
  if (id.empty()) {
    std::fprintf(stderr, "usage: budstikke track [-c FILE] ID\n");
    return 2;
  }
  config::EngineConfig cfg;
  config::Diagnostics d;
  if (!load_config(file, cfg, d)) return 2;
  log::set_level(log::Level::kWarn);
  const std::string topic = cfg.topic_prefix + runtime::kTrackingTopic;
  auto existing = bus::list_topics(cfg.kafka, std::chrono::milliseconds(5000));
  if (!existing) {
    std::fprintf(stderr, "budstikke track: Kafka at %s is not reachable: %s\n",
                 cfg.kafka.bootstrap().c_str(), existing.error().message.c_str());
    return 1;
  }
  if (std::find(existing->begin(), existing->end(), topic) == existing->end()) {
    std::fprintf(stderr, "budstikke track: no tracking topic '%s' (has the engine run?)\n",
                 topic.c_str());
    return 1;
  }
  // The message's tracking key; its event ids are learnt from its records as they come.
  const std::string key = runtime::tracking_key(id, cfg.key_secret);
  std::set<std::string> event_ids = {id};
  auto c = bus::Consumer::create(cfg.kafka, "budstikke-track-" + uuid_v4(), {topic});
  if (!c) {
    std::fprintf(stderr, "budstikke track: %s\n", c.error().message.c_str());
    return 1;
  }
  std::vector<std::pair<std::string, json>> found;  // (at, record)
  int64_t read = 0;
  auto last = std::chrono::steady_clock::now();
  // Until the topic is read to its end: nothing new for a while (longer before the first
  // record, while the consumer joins). Offsets are no guide: transaction markers take some.
  for (;;) {
    auto m = (*c)->poll(std::chrono::milliseconds(200));
    if (!m) {
      std::fprintf(stderr, "budstikke track: %s\n", m.error().message.c_str());
      return 1;
    }
    if (!m->has_value()) {
      const auto idle =
          read == 0 ? std::chrono::milliseconds(10000) : std::chrono::milliseconds(1500);
      if (std::chrono::steady_clock::now() - last > idle) break;
      continue;
    }
    last = std::chrono::steady_clock::now();
    ++read;
    const auto& msg = **m;
    json t = json::parse(msg.value(), nullptr, false);
    if (!t.is_object()) continue;
    const std::string event_id = t.value("event_id", "");
    if (msg.key() == key || t.value("message_id", "") == id || event_ids.count(event_id)) {
      if (!event_id.empty()) event_ids.insert(event_id);
      found.emplace_back(t.value("at", ""), std::move(t));
    }
  }
  if (found.empty()) {
    std::fprintf(stderr,
                 "budstikke track: nothing is known about '%s' (%lld tracking records "
                 "read)\n",
                 redact_identity_numbers(id).c_str(), static_cast<long long>(read));
    return 1;
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::printf("%s: %zu state(s)\n", redact_identity_numbers(id).c_str(), found.size());
  for (const auto& [at, t] : found) std::printf("  %s\n", describe(t).c_str());
  return 0;
}

}  // namespace budstikke::cli
