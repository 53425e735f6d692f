// budstikke track ID: a message's history from the tracking topic: received or rejected
// (why), routed to whom, every delivery attempt and its outcome, dead letters, replays,
// receipts. ID is a message id (MsgId, MSH-10), an event id or a conversation ref. Prints
// routing metadata only, never patient data. Reading a message's history is recorded in the
// audit log.

#include <cstdio>

#include "engine/cli/commands.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/log.hpp"
#include "engine/core/redact.hpp"
#include "engine/ops/audit.hpp"
#include "engine/ops/history.hpp"

namespace budstikke::cli {

int cmd_track(const Args& args) {
  std::string file = "config/engine.yaml";
  std::string id;
  bool as_json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-c" || args[i] == "--config") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "budstikke track: %s needs a file\n", args[i].c_str());
        return 2;
      }
      file = args[++i];
    } else if (args[i] == "--json") {
      as_json = true;
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
    std::fprintf(stderr, "usage: budstikke track [-c FILE] [--json] ID\n");
    return 2;
  }
  config::EngineConfig cfg;
  config::Diagnostics d;
  if (!load_config(file, cfg, d)) return 2;
  log::set_level(log::Level::kWarn);
  auto h = ops::message_history(cfg, id);
  if (!h) {
    std::fprintf(stderr, "budstikke track: %s\n", h.error().message.c_str());
    return 1;
  }
  ops::AuditLog audit(cfg);
  ops::AuditEntry a;
  a.actor = ops::cli_actor(cfg);
  a.action = "track";
  a.message_id = id;
  a.patient_refs = h->patient_refs;
  a.count = static_cast<int64_t>(h->states.size());
  if (auto st = audit.record(a); !st) {
    std::fprintf(stderr, "budstikke track: refused: the audit record could not be written: %s\n",
                 st.error().message.c_str());
    return 1;
  }
  if (h->states.empty()) {
    std::fprintf(stderr,
                 "budstikke track: nothing is known about '%s' (%lld tracking records read)\n",
                 redact_identity_numbers(id).c_str(), static_cast<long long>(h->scanned));
    return 1;
  }
  if (as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (auto s : h->states) {
      s.erase("patient_ref");
      out.push_back(std::move(s));
    }
    std::printf("%s\n", redact_identity_numbers(out.dump(2)).c_str());
    return 0;
  }
  std::printf("%s: %zu state(s)\n", redact_identity_numbers(id).c_str(), h->states.size());
  for (const auto& t : h->states) std::printf("  %s\n", ops::describe_state(t).c_str());
  return 0;
}

}  // namespace budstikke::cli
