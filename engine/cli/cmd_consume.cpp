// budstikke consume: read a topic and print one line per record (for operators and the demo).
// Prints routing metadata only (type, message id, sender, receiver), never patient data.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/cli/commands.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/redact.hpp"
#include "engine/event/event.hpp"
#include "engine/ops/audit.hpp"

namespace budstikke::cli {

namespace {

std::string party(const nlohmann::json& p) {
  if (!p.is_object()) return "?";
  std::string s;
  if (p.contains("organisation")) {
    const auto& o = p["organisation"];
    s = o.value("name", std::string("?"));
    if (o.contains("her_id")) s += " (HER " + o["her_id"].get<std::string>() + ")";
  }
  if (p.contains("department")) s += " / " + p["department"].value("name", std::string("?"));
  return s.empty() ? "?" : s;
}

}  // namespace

int cmd_consume(const Args& args) {
  std::string file = "config/engine.yaml";
  std::vector<std::string> topics;
  long max = -1;
  long idle_ms = 3000;
  bool raw = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto need = [&](const char* what) -> const std::string* {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "budstikke consume: %s needs %s\n", a.c_str(), what);
        return nullptr;
      }
      return &args[++i];
    };
    if (a == "-c" || a == "--config") {
      auto v = need("a file");
      if (!v) return 2;
      file = *v;
    } else if (a == "--max") {
      auto v = need("a number");
      if (!v) return 2;
      max = std::atol(v->c_str());
    } else if (a == "--idle-ms") {
      auto v = need("milliseconds");
      if (!v) return 2;
      idle_ms = std::atol(v->c_str());
    } else if (a == "--raw") {
      raw = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "budstikke consume: unknown option %s\n", a.c_str());
      return 2;
    } else {
      topics.push_back(a);
    }
  }
  if (topics.empty()) {
    std::fprintf(stderr, "budstikke consume: name at least one topic\n");
    return 2;
  }
  config::EngineConfig cfg;
  config::Diagnostics d;
  if (!load_config(file, cfg, d)) return 2;
  log::set_level(log::Level::kWarn);
  auto existing = bus::list_topics(cfg.kafka, std::chrono::milliseconds(5000));
  if (!existing) {
    std::fprintf(stderr, "budstikke consume: Kafka at %s is not reachable: %s\n",
                 cfg.kafka.bootstrap().c_str(), existing.error().message.c_str());
    return 1;
  }
  for (auto& t : topics) {
    t = cfg.topic_prefix + t;
    if (std::find(existing->begin(), existing->end(), t) == existing->end()) {
      std::fprintf(stderr, "budstikke consume: no topic '%s'\n", t.c_str());
      return 1;
    }
  }
  // --raw shows message content: recorded in the audit log before anything is shown, and
  // again at the end with the patients whose events were shown.
  std::unique_ptr<ops::AuditLog> audit;
  ops::AuditEntry entry;
  if (raw) {
    audit = std::make_unique<ops::AuditLog>(cfg);
    entry.actor = ops::cli_actor(cfg);
    entry.action = "consume.raw";
    for (const auto& t : topics) entry.detail += (entry.detail.empty() ? "" : ",") + t;
    if (auto st = audit->record(entry); !st) {
      std::fprintf(stderr,
                   "budstikke consume: refused: the audit record could not be written: %s\n",
                   st.error().message.c_str());
      return 1;
    }
  }
  // A throw-away group: reads from the beginning, commits nothing that matters.
  auto c = bus::Consumer::create(cfg.kafka.for_role("consume"), "budstikke-consume-" + uuid_v4(),
                                 topics);
  if (!c) {
    std::fprintf(stderr, "budstikke consume: %s\n", c.error().message.c_str());
    return 1;
  }
  long n = 0;
  auto last = std::chrono::steady_clock::now();
  while (max < 0 || n < max) {
    auto m = (*c)->poll(std::chrono::milliseconds(200));
    if (!m) {
      std::fprintf(stderr, "budstikke consume: %s\n", m.error().message.c_str());
      return 1;
    }
    if (!m->has_value()) {
      // Before the first record, allow time for joining the group and fetching.
      const long wait = n == 0 ? std::max(idle_ms, 10000L) : idle_ms;
      if (std::chrono::steady_clock::now() - last > std::chrono::milliseconds(wait)) break;
      continue;
    }
    last = std::chrono::steady_clock::now();
    const auto& msg = **m;
    ++n;
    if (raw) {
      if (auto e = event_from_json_string(msg.value()))
        if (auto pr = patient_ref(*e, cfg.key_secret); !pr.empty()) entry.patient_refs.insert(pr);
      std::printf("%s\n", redact_identity_numbers(msg.value()).c_str());
      continue;
    }
    const auto j = nlohmann::json::parse(msg.value(), nullptr, false);
    try {
      std::string line = std::string(msg.topic()) + "[" + std::to_string(msg.partition()) + "@" +
                         std::to_string(msg.offset()) + "] ";
      if (j.is_object() && j.contains("state")) {
        line +=
            j.value("state", std::string("?")) + " msg " + j.value("message_id", std::string("?"));
        if (j.contains("channel")) line += " via " + j.value("channel", std::string("?"));
        if (j.contains("route")) line += " route " + j.value("route", std::string("?"));
        if (j.contains("system")) line += " to " + j.value("system", std::string("?"));
        if (auto ds = j.find("destinations"); ds != j.end() && ds->is_array())
          line += " -> " + std::to_string(ds->size()) + " system(s)";
        if (j.contains("attempts"))
          line += " after " + std::to_string(j.value("attempts", 0)) + " attempt(s)";
        if (j.contains("detail")) line += ": " + j.value("detail", std::string());
        if (j.contains("type")) line += " as " + j.value("type", std::string("?"));
        if (j.contains("code")) line += " (" + j.value("code", std::string("")) + ")";
      } else if (j.is_object() && j.contains("event_id") && j.contains("source") &&
                 j["source"].is_object()) {
        line += j.value("type", std::string("?")) + " " +
                j["source"].value("message_type", std::string("")) + " msg " +
                j["source"].value("message_id", std::string("?")) + " from " +
                party(j.value("sender", nlohmann::json())) + " to " +
                party(j.value("receiver", nlohmann::json()));
      } else if (j.is_object() && j.contains("reason")) {
        line += j.value("code", std::string("?")) + " " + j.value("name", std::string("")) + ": " +
                j.value("reason", std::string(""));
      } else {
        line += "receipt for msg " + msg.header("bs-original-message-id").value_or("?") +
                " to HER " + msg.header("bs-receiver-her").value_or("?") + " (" +
                msg.header("bs-format").value_or("?") + ", " + std::to_string(msg.value().size()) +
                " bytes)";
      }
      std::printf("%s\n", redact_identity_numbers(line).c_str());
    } catch (const nlohmann::json::exception&) {
      // A record of another shape: show it as it is rather than stop.
      std::printf("%s[%d@%lld] %s\n", std::string(msg.topic()).c_str(), msg.partition(),
                  static_cast<long long>(msg.offset()),
                  redact_identity_numbers(msg.value().substr(0, 200)).c_str());
    }
  }
  (void)(*c)->close();
  std::fprintf(stderr, "%ld record(s)\n", n);
  if (audit) {
    entry.count = n;
    if (auto st = audit->record(entry); !st)
      std::fprintf(stderr, "budstikke consume: the closing audit record was not written: %s\n",
                   st.error().message.c_str());
  }
  return 0;
}

}  // namespace budstikke::cli
