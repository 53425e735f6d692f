// budstikke audit --patient NUMBER: who looked at or re-sent this patient's messages, from
// the audit topic and the local audit file. The number is turned into the same keyed hash
// the audit records carry; it is never stored or printed.

#include <cctype>
#include <cstdio>

#include "engine/cli/commands.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/log.hpp"
#include "engine/core/redact.hpp"
#include "engine/event/event.hpp"
#include "engine/ops/audit.hpp"

namespace budstikke::cli {

int cmd_audit(const Args& args) {
  std::string file = "config/engine.yaml";
  std::string number;
  ops::AuditQuery q;
  bool as_json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c" || a == "--config" || a == "--patient") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "budstikke audit: %s needs a value\n", a.c_str());
        return 2;
      }
      (a == "--patient" ? number : file) = args[++i];
    } else if (a == "--file-only") {
      q.from_topic = false;
    } else if (a == "--topic-only") {
      q.from_file = false;
    } else if (a == "--json") {
      as_json = true;
    } else {
      std::fprintf(stderr, "budstikke audit: unknown argument '%s' (see budstikke help audit)\n",
                   redact_identity_numbers(a).c_str());
      return 2;
    }
  }
  if (number.empty()) {
    std::fprintf(stderr,
                 "usage: budstikke audit [-c FILE] --patient NUMBER [--file-only | "
                 "--topic-only] [--json]\n");
    return 2;
  }
  std::string digits;
  for (char c : number)
    if (c != ' ' && c != '-' && c != '.') digits += c;
  bool ok = digits.size() == 11;
  for (char c : digits) ok = ok && std::isdigit(static_cast<unsigned char>(c));
  if (!ok) {
    std::fprintf(stderr,
                 "budstikke audit: --patient takes an identity number "
                 "(fødselsnummer, D-number): 11 digits\n");
    return 2;
  }
  if (!q.from_file && !q.from_topic) {
    std::fprintf(stderr, "budstikke audit: --file-only and --topic-only exclude each other\n");
    return 2;
  }
  config::EngineConfig cfg;
  config::Diagnostics d;
  if (!load_config(file, cfg, d)) return 2;
  log::set_level(log::Level::kWarn);
  q.patient_ref = patient_ref_of_number(digits, cfg.key_secret);
  auto f = ops::find_audit(cfg, q);
  if (!f) {
    std::fprintf(stderr, "budstikke audit: %s\n", f.error().message.c_str());
    return 1;
  }
  for (const auto& w : f->warnings)
    std::fprintf(stderr, "budstikke audit: warning: %s\n", w.c_str());
  // Nothing could be read at all: say so rather than "no records".
  const size_t places = (q.from_file ? 1 : 0) + (q.from_topic ? 1 : 0);
  if (f->warnings.size() >= places && f->records.empty()) {
    std::fprintf(stderr, "budstikke audit: no audit records could be read\n");
    return 1;
  }
  if (as_json) {
    nlohmann::json out = f->records;
    for (auto& r : out) r.erase("patient_refs");
    std::printf("%s\n", redact_identity_numbers(out.dump(2)).c_str());
    return 0;
  }
  std::printf("%zu audit record(s) concern this patient\n", f->records.size());
  for (const auto& r : f->records) {
    std::string line =
        r.value("at", "?") + "  " + r.value("actor", "?") + "  " + r.value("action", "?");
    if (r.contains("message_id")) line += "  message " + r.value("message_id", "");
    if (r.contains("system")) line += "  system " + r.value("system", "");
    line += "  (" + std::to_string(r.value("count", 0)) + " record(s))";
    if (r.contains("detail")) line += "  " + r.value("detail", "");
    std::printf("  %s\n", redact_identity_numbers(line).c_str());
  }
  return 0;
}

}  // namespace budstikke::cli
