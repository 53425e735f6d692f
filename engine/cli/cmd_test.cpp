// budstikke test: route tests (routes/*.test.yaml) through the real codecs and routes.
// budstikke dry-run: one route on message files: the event, the filter decision, every
// rendered output. Neither touches Kafka.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/cli/commands.hpp"
#include "engine/cli/components.hpp"
#include "engine/core/log.hpp"
#include "engine/event/event.hpp"
#include "engine/registry/registry.hpp"
#include "engine/route/route.hpp"
#include "engine/routetest/route_test.hpp"

namespace budstikke::cli {

namespace {

// engine.yaml, its registry, routes and codecs (schemas when the folder has them).
struct Loaded {
  config::EngineConfig cfg;
  std::shared_ptr<const registry::Registry> reg;
  route::RouteSet routes;
  runtime::CodecRegistry codecs;
  bool schemas = false;
};

bool load_all(const char* cmd, const std::string& file, Loaded& l) {
  config::Diagnostics d;
  if (!load_config(file, l.cfg, d)) return false;
  log::set_level(log::Level::kWarn);
  if (!std::ifstream(l.cfg.systems_file).good()) {
    std::fprintf(stderr, "budstikke %s: no registry at %s\n", cmd, l.cfg.systems_file.c_str());
    return false;
  }
  // Without the XSDs (the same warning as `run`), tests that expect T02 are skipped.
  const auto schemas = load_schemas(l.cfg.schema_dir);
  l.schemas = schemas != nullptr;
  l.codecs = codec_registry(schemas);
  config::Diagnostics rd;
  l.reg = registry::Registry::load(l.cfg.systems_file, rd);
  if (!rd.has_errors()) l.routes = route::load_routes(l.cfg.routes_dir, *l.reg, l.codecs, rd);
  if (rd.has_errors()) {
    std::fputs(rd.format_all().c_str(), stderr);
    std::fprintf(stderr, "budstikke %s: the registry or routes have errors (budstikke lint)\n",
                 cmd);
    return false;
  }
  return true;
}

std::string party_line(const Party& p) {
  std::string s = p.organisation.name.empty() ? "?" : p.organisation.name;
  if (!p.organisation.her_id.empty()) s += " (HER " + p.organisation.her_id + ")";
  return s;
}

}  // namespace

int cmd_test(const Args& args) {
  std::string file = "config/engine.yaml";
  std::vector<std::string> paths;
  routetest::Options o;
  bool quiet = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c" || a == "--config") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "budstikke test: %s needs a file\n", a.c_str());
        return 2;
      }
      file = args[++i];
    } else if (a == "--update-golden") {
      o.update_golden = true;
    } else if (a == "-q" || a == "--quiet") {
      quiet = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "budstikke test: unknown option %s (see budstikke help test)\n",
                   a.c_str());
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  Loaded l;
  if (!load_all("test", file, l)) return 2;
  o.validate = l.schemas;
  if (paths.empty()) paths.push_back(l.cfg.routes_dir);
  config::Diagnostics fd;
  const auto files = routetest::find_test_files(paths, fd);
  auto suite = routetest::run_files(files, l.routes, *l.reg, l.codecs, o);
  for (const auto& c : suite.cases) {
    if (c.passed && quiet) continue;
    std::printf("%s %s: %s\n",
                c.skipped  ? "SKIP"
                : c.passed ? "PASS"
                           : "FAIL",
                c.file.c_str(), c.name.c_str());
    for (const auto& p : c.problems) std::printf("    %s\n", p.c_str());
  }
  const std::string problems = fd.format_all() + suite.diags.format_all();
  std::fputs(problems.c_str(), stdout);
  if (files.empty() && !fd.has_errors())
    std::printf("no route tests (*.test.yaml) in %s\n", paths.front().c_str());
  if (suite.skipped() > 0)
    std::printf("%zu passed, %zu failed, %zu skipped\n", suite.passed(), suite.failed(),
                suite.skipped());
  else
    std::printf("%zu passed, %zu failed\n", suite.passed(), suite.failed());
  if (fd.has_errors() || suite.diags.has_errors()) return 2;
  return suite.failed() == 0 && !files.empty() ? 0 : 1;
}

int cmd_dry_run(const Args& args) {
  std::string file = "config/engine.yaml";
  std::string route_name;
  std::vector<std::string> inputs;
  bool no_validate = false;
  bool show_event = true;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c" || a == "--config" || a == "--route" || a == "-r") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "budstikke dry-run: %s needs a value\n", a.c_str());
        return 2;
      }
      (a == "--route" || a == "-r" ? route_name : file) = args[++i];
    } else if (a == "--no-validate") {
      no_validate = true;
    } else if (a == "--no-event") {
      show_event = false;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "budstikke dry-run: unknown option %s (see budstikke help dry-run)\n",
                   a.c_str());
      return 2;
    } else {
      inputs.push_back(a);
    }
  }
  if (route_name.empty() || inputs.empty()) {
    std::fprintf(stderr,
                 "usage: budstikke dry-run [-c FILE] --route NAME [--no-validate] "
                 "[--no-event] FILE...\n");
    return 2;
  }
  Loaded l;
  if (!load_all("dry-run", file, l)) return 2;
  const route::Route* route = l.routes.find(route_name);
  if (!route) {
    std::string known;
    for (const auto& r : l.routes.routes) known += (known.empty() ? "" : ", ") + r->name();
    std::fprintf(stderr, "budstikke dry-run: unknown route '%s'; routes: %s\n", route_name.c_str(),
                 known.c_str());
    return 2;
  }
  int rc = 0;
  for (const auto& in : inputs) {
    std::ifstream f(in, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "budstikke dry-run: %s: cannot open file\n", in.c_str());
      rc = 2;
      continue;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::printf("== %s (route %s)\n", in.c_str(), route->name().c_str());
    auto decoded = routetest::decode_input(ss.str(), std::filesystem::path(in).filename().string(),
                                           l.codecs, l.schemas && !no_validate, l.cfg.key_secret);
    if (auto* rej = std::get_if<runtime::CodecRejection>(&decoded)) {
      std::printf("REJECTED at ingest: %s %s: %s\n", rej->code.c_str(), rej->code_text.c_str(),
                  rej->reason.c_str());
      rc = rc ? rc : 1;
      continue;
    }
    route::RouteEnv env{l.reg.get(), &l.codecs, nullptr};
    for (const auto& e : std::get<std::vector<Event>>(decoded)) {
      std::printf("event: %s, message %s, from %s to %s\n", std::string(to_string(e.type)).c_str(),
                  e.source.message_id.c_str(), party_line(e.sender).c_str(),
                  party_line(e.receiver).c_str());
      if (show_event) std::printf("%s\n", to_json(e).dump(2).c_str());
      const auto r = route->process(e, env);
      const bool type_ok = std::find(route->topics().begin(), route->topics().end(),
                                     canonical_topic(e.type)) != route->topics().end() ||
                           std::find(route->topics().begin(), route->topics().end(),
                                     std::string(to_string(e.type))) != route->topics().end();
      if (!type_ok)
        std::printf(
            "note: the route reads [%s]; a %s event never reaches it in the engine\n",
            [&] {
              std::string s;
              for (const auto& t : route->topics()) s += (s.empty() ? "" : ", ") + t;
              return s;
            }()
                .c_str(),
            std::string(to_string(e.type)).c_str());
      std::printf("filter: %s -> %s\n",
                  route->filter() ? route->filter()->text().c_str() : "(none)",
                  r.matched ? "true: routed" : "false: skipped");
      if (!r.matched) continue;
      std::printf("deliveries: %zu\n", r.deliveries.size());
      for (const auto& d : r.deliveries) {
        std::printf("--> %s  %s  %s  %zu bytes%s\n", d.system.c_str(), d.format.c_str(),
                    d.content_type.c_str(), d.payload.size(),
                    d.answers_sender ? "  (its outcome answers the sender)" : "");
        std::string p = d.payload;
        for (auto& ch : p)
          if (ch == '\r') ch = '\n';
        std::printf("%s%s", p.c_str(), p.empty() || p.back() != '\n' ? "\n" : "");
      }
      for (const auto& fl : r.failures)
        std::printf("not routed%s%s: %s\n", fl.system.empty() ? "" : " to ", fl.system.c_str(),
                    fl.reason.c_str());
      for (const auto& s : r.skipped)
        std::printf("skipped %s: disabled in the registry\n", s.c_str());
      if (r.receipt_context) std::printf("receipt: the sender gets an AppRec after delivery\n");
    }
  }
  return rc;
}

}  // namespace budstikke::cli
