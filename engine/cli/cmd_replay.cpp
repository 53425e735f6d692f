// budstikke replay: dead letters back to delivery, or one message to one system. Every
// replay (and dry run) is recorded in the audit log before anything is sent.

#include <cstdio>
#include <fstream>

#include "engine/cli/commands.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/log.hpp"
#include "engine/core/redact.hpp"
#include "engine/ops/audit.hpp"
#include "engine/ops/replay.hpp"
#include "engine/registry/registry.hpp"

namespace budstikke::cli {

int cmd_replay(const Args& args) {
  std::string file = "config/engine.yaml";
  ops::ReplayRequest req;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* what) -> const std::string* {
      if (i + 1 >= args.size() || args[i + 1].empty() || args[i + 1][0] == '-') {
        std::fprintf(stderr, "budstikke replay: %s needs %s\n", a.c_str(), what);
        return nullptr;
      }
      return &args[++i];
    };
    if (a == "-c" || a == "--config") {
      const auto* v = value("a file");
      if (!v) return 2;
      file = *v;
    } else if (a == "--system") {
      const auto* v = value("a system id");
      if (!v) return 2;
      req.systems.push_back(*v);
    } else if (a == "--all") {
      req.all = true;
    } else if (a == "--message-id") {
      const auto* v = value("a message id");
      if (!v) return 2;
      req.message_id = *v;
    } else if (a == "--to") {
      const auto* v = value("a system id");
      if (!v) return 2;
      req.to_system = *v;
    } else if (a == "--since" || a == "--until") {
      const auto* v = value("a time (2026-11-22T10:00:00Z, 2026-11-22, 2h, 7d)");
      if (!v) return 2;
      auto t = ops::parse_time_ms(*v);
      if (!t) {
        std::fprintf(stderr,
                     "budstikke replay: %s '%s' is not a time; use 2026-11-22T10:00:00Z, "
                     "2026-11-22T10:00:00+01:00, 2026-11-22, or 30m, 2h, 7d back from now\n",
                     a.c_str(), v->c_str());
        return 2;
      }
      (a == "--since" ? req.since_ms : req.until_ms) = t;
    } else if (a == "--route-failed") {
      req.route_failed = true;
    } else if (a == "--route") {
      const auto* v = value("a route name");
      if (!v) return 2;
      req.route = *v;
    } else if (a == "--dry-run") {
      req.dry_run = true;
    } else {
      std::fprintf(stderr, "budstikke replay: unknown argument '%s' (see budstikke help replay)\n",
                   a.c_str());
      return 2;
    }
  }
  if (req.to_system.empty() && req.systems.empty() && !req.all && !req.route_failed) {
    std::fprintf(stderr,
                 "usage: budstikke replay [-c FILE] (--system ID... | --all) [--message-id ID] "
                 "[--since T] [--until T] [--dry-run]\n"
                 "       budstikke replay [-c FILE] --route-failed [--route NAME] "
                 "[--message-id ID] [--since T] [--until T] [--dry-run]\n"
                 "       budstikke replay [-c FILE] --message-id ID --to SYSTEM [--dry-run]\n");
    return 2;
  }
  if (req.route_failed && (!req.to_system.empty() || req.all || !req.systems.empty())) {
    std::fprintf(stderr,
                 "budstikke replay: --route-failed routes failed events again; it does not "
                 "combine with --to, --system or --all\n");
    return 2;
  }
  if (!req.route.empty() && !req.route_failed) {
    std::fprintf(stderr, "budstikke replay: --route NAME goes with --route-failed\n");
    return 2;
  }
  if (!req.to_system.empty() && (req.all || !req.systems.empty())) {
    std::fprintf(stderr,
                 "budstikke replay: --to sends one message to one system; it does not "
                 "combine with --system or --all\n");
    return 2;
  }
  if (!req.to_system.empty() && req.message_id.empty()) {
    std::fprintf(stderr, "budstikke replay: --to needs the message: --message-id ID\n");
    return 2;
  }
  config::EngineConfig cfg;
  config::Diagnostics d;
  if (!load_config(file, cfg, d)) return 2;
  log::set_level(log::Level::kWarn);
  if (!std::ifstream(cfg.systems_file).good()) {
    std::fprintf(stderr, "budstikke replay: no registry at %s\n", cfg.systems_file.c_str());
    return 2;
  }
  config::Diagnostics rd;
  auto reg = registry::Registry::load(cfg.systems_file, rd);
  if (rd.has_errors()) {
    std::fputs(rd.format_all().c_str(), stderr);
    return 2;
  }
  req.actor = ops::cli_actor(cfg);
  const auto codecs = codec_registry(nullptr);
  ops::AuditLog audit(cfg);
  auto rep = ops::replay(cfg, *reg, codecs, req, audit);
  if (!rep) {
    std::fprintf(stderr, "budstikke replay: %s\n", rep.error().message.c_str());
    return rep.error().domain == ErrorDomain::kConfig ? 2 : 1;
  }
  for (const auto& i : rep->items) {
    std::printf("%s %s -> %s  message %s  job %s", rep->dry_run ? "would replay" : "replayed",
                i.from.c_str(), i.system.c_str(), redact_identity_numbers(i.message_id).c_str(),
                i.job_id.c_str());
    if (!i.reason.empty()) std::printf("  (was: %s)", redact_identity_numbers(i.reason).c_str());
    std::printf("\n");
  }
  for (const auto& i : rep->not_replayed) {
    std::printf("%s %s%s%s  message %s: %s\n", rep->dry_run ? "would not replay" : "not replayed",
                i.from.c_str(), i.system.empty() ? "" : " -> ", i.system.c_str(),
                redact_identity_numbers(i.message_id).c_str(),
                redact_identity_numbers(i.reason).c_str());
  }
  if (rep->failed_again > 0)
    std::printf("%lld event(s) failed again%s\n", static_cast<long long>(rep->failed_again),
                rep->dry_run ? "" : "; they are on route.failed again");
  if (rep->items.empty()) {
    if (rep->failed_again > 0) return 1;
    std::printf("nothing to replay (%lld record(s) read)\n", static_cast<long long>(rep->scanned));
    return req.message_id.empty() ? 0 : 1;
  }
  std::printf("%zu message(s) %s (%lld record(s) read); recorded in the audit log\n",
              rep->items.size(), rep->dry_run ? "would be replayed" : "replayed",
              static_cast<long long>(rep->scanned));
  return rep->failed_again > 0 ? 1 : 0;
}

}  // namespace budstikke::cli
