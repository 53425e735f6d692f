// libFuzzer target: a record on a canonical topic, as a route loop reads it, run through the
// shipped routes (routes/*.yaml) against the shipped registry (config/systems.yaml). Anyone
// who may write to a canonical topic can put any bytes there; the route stage must never
// crash, hang or leak on them. Differential too:
//   - the fast JSON reader, where it takes a text, gives nlohmann's value (design note 50);
//   - a route gives the same outcome with the view the route stage builds from the JSON it
//     read (event_view_from_json) as with the one dry-run and route tests build from the
//     Event (event_view): else `budstikke test` would promise what the engine does not do;
//   - the route's tracking record is JSON.
// Any difference traps.
//
// Seeds: the canonical records of the example messages. The target writes them itself:
//   BUDSTIKKE_FUZZ_WRITE_SEEDS=DIR BUDSTIKKE_FUZZ_SEEDS_FROM=DIR1:DIR2 build/fuzz/bin/fuzz_route
// decodes every file in DIR1, DIR2... and writes each event's JSON to DIR (tests/fuzz/run.sh
// does this for examples/messages and ../shared/standards/examples).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>

#include "adapters/emelding/emelding_codec.hpp"
#include "adapters/hl7v2/canonical.hpp"
#include "engine/event/json_read.hpp"
#include "engine/route/expr.hpp"
#include "engine/route/route.hpp"
#include "engine/route/route_stage.hpp"

using namespace budstikke;

namespace {

struct Loaded {
  runtime::CodecRegistry codecs;
  std::shared_ptr<const registry::Registry> registry;
  route::RouteSet routes;
};
Loaded* g = nullptr;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Decodes every regular file under each directory of `from` (':'-separated) and writes each
// canonical event's JSON to `to`, one file per event.
int write_seeds(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  int written = 0;
  std::stringstream dirs(from);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty() || !std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.file_size() > 256 * 1024) continue;
      const std::string bytes = read_file(entry.path());
      const runtime::Codec* c = g->codecs.detect(bytes);
      if (!c) continue;
      runtime::DecodeContext ctx{"fuzz", entry.path().string(), false, "fuzz-secret"};
      auto r = c->decode(bytes, ctx);
      auto* out = std::get_if<runtime::CodecOutput>(&r);
      if (!out) continue;
      for (auto& e : out->events) {
        e.received_at = "2026-12-07T08:00:00.000Z";
        const std::string text = to_json_string(e);
        if (text.size() > 65536) continue;  // run.sh's -max_len would cut it
        std::ofstream(std::filesystem::path(to) / ("seed-" + std::to_string(written++) + ".json"),
                      std::ios::binary)
            << text;
      }
    }
  }
  std::fprintf(stderr, "fuzz_route: %d seeds written to %s\n", written, to.c_str());
  return written > 0 ? 0 : 1;
}

// A failure only an exception out of the route's own code gives (nlohmann's, libstdc++'s):
// the route stage survives it (Route::process turns it into a failure), but it is a bug.
bool thrown_by_code(const route::RouteResult& r) {
  for (const auto& f : r.failures)
    if (f.reason.find("[json.exception") != std::string::npos ||
        f.reason.find("basic_string") != std::string::npos ||
        f.reason.find("vector::") != std::string::npos)
      return true;
  return false;
}

// What a route's outcome is, as one string: compared between the two views.
std::string outcome(const route::RouteResult& r) {
  std::string s = r.matched ? "matched\n" : "not matched\n";
  for (const auto& d : r.deliveries)
    // The payload's size, not its bytes: renderers stamp it with the time (MSH-7, GenDate),
    // which may change between the two runs.
    s += "deliver " + d.system + " " + d.format + " " + d.job_id + " " + d.idempotency_key +
         (d.answers_sender ? " answers " : " ") + std::to_string(d.payload.size()) + "\n";
  for (const auto& f : r.failures) s += "fail " + f.system + " " + f.code + " " + f.reason + "\n";
  for (const auto& k : r.skipped) s += "skip " + k + "\n";
  s += "receipt " + r.receipt_codec + " " + (r.receipt_context ? r.receipt_context->dump() : "");
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g = new Loaded;
  g->codecs.add(std::make_shared<hl7v2::Hl7Codec>());
  g->codecs.add(std::make_shared<emelding::EmeldingCodec>(nullptr));
  const std::string src = BUDSTIKKE_SOURCE_DIR;
  config::Diagnostics d;
  g->registry = registry::Registry::load(src + "/config/systems.yaml", d);
  if (g->registry) g->routes = route::load_routes(src + "/routes", *g->registry, g->codecs, d);
  // Beside the shipped routes, routes that send every type through each renderer, with a
  // map first: the shipped ones mostly forward the original, so the renderers that read the
  // body (HL7 v2 from KITH, KITH, JSON) would seldom be reached.
  constexpr const char* kEveryType =
      "[referral, discharge_summary, lab_requisition, lab_result, dialog, admission, discharge, "
      "transfer, patient_update, merge, document, apprec, plo, other]";
  for (const auto& [name, render, to] :
       {std::tuple{"fuzz-hl7v2", "hl7v2/2.5", "nordvik-barn"},
        std::tuple{"fuzz-kith", "kith", "receiver"}, std::tuple{"fuzz-json", "json", "query"}}) {
    std::string text = std::string("name: ") + name + "\nfrom: " + kEveryType +
                       "\nmap:\n  - set: body.fuzz_note\n    value: 'lower(string(body.patient)) + "
                       "string(len(body))'\n  - rename: body.fuzz_note\n    to: body.note2\n"
                       "render: [" +
                       render + "]\nto:\n";
    text += std::string(to) == "query"
                ? "  - query: 'system.kind == \"national\" and exists(receiver.her_id)'\n"
                : std::string("  - ") + to + "\n";
    if (g->registry)
      if (auto r =
              route::parse_route(text, std::string(name) + ".yaml", *g->registry, g->codecs, d))
        g->routes.routes.push_back(r);
  }
  if (!g->registry || d.has_errors() || g->routes.routes.empty()) {
    std::fputs(d.format_all().c_str(), stderr);
    std::abort();
  }
  if (const char* to = std::getenv("BUDSTIKKE_FUZZ_WRITE_SEEDS")) {
    const char* from = std::getenv("BUDSTIKKE_FUZZ_SEEDS_FROM");
    std::exit(write_seeds(from ? from : src + "/examples/messages", to));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::json parsed = read_json(text);
  const nlohmann::json slow = nlohmann::json::parse(text, nullptr, false);
  // A discarded value equals nothing, itself included: compare the verdict, then the value.
  if (parsed.is_discarded() != slow.is_discarded()) __builtin_trap();
  if (!slow.is_discarded() && (parsed != slow || parsed.dump() != slow.dump())) __builtin_trap();
  if (auto fast = read_json_fast(text); fast && (*fast != slow || fast->dump() != slow.dump()))
    __builtin_trap();
  if (parsed.is_discarded()) return 0;

  auto ev = event_from_json(parsed);
  if (!ev) return 0;
  const nlohmann::json view = route::event_view_from_json(std::move(parsed));
  const route::RouteEnv env{g->registry.get(), &g->codecs, nullptr};
  const auto type = to_string(ev->type);
  for (const auto& r : g->routes.routes) {
    const bool skip = r->passes_over(type, ev->source.format, env);
    const route::RouteResult from_json = r->process(*ev, env, &view);
    const route::RouteResult from_event = r->process(*ev, env);
    if (outcome(from_json) != outcome(from_event)) {
      std::fprintf(stderr, "route %s: view from the JSON:\n%s\n--- from the Event:\n%s\n",
                   r->name().c_str(), outcome(from_json).c_str(), outcome(from_event).c_str());
      __builtin_trap();
    }
    if (thrown_by_code(from_json)) __builtin_trap();
    // An event the headers rule out is one the route does not match.
    if (skip && from_json.matched) __builtin_trap();
    if (from_json.matched) {
      const std::string t = route::route_tracking(
          from_json, from_json.deliveries.empty() ? "unrouted" : "routed",
          "2026-12-07T08:00:00.000Z", r->name(), ev->event_id, ev->source.message_id, "0");
      if (!nlohmann::json::accept(t)) __builtin_trap();
    }
  }
  // The same event with one body member of another shape (the member and the shape chosen
  // by the input's bytes): renderers and maps read members of the shapes the codecs write,
  // and must take any other.
  if (ev->body.is_object() && !ev->body.empty()) {
    static const nlohmann::json kShapes[] = {nullptr,
                                             5,
                                             "x",
                                             nlohmann::json::array({1, "x", nullptr}),
                                             nlohmann::json::object({{"a", 1}}),
                                             nlohmann::json::array({nlohmann::json::array()})};
    Event odd = *ev;
    auto it = odd.body.begin();
    std::advance(it, static_cast<long>(data[size / 2] % odd.body.size()));
    *it = kShapes[data[size / 3] % std::size(kShapes)];
    const nlohmann::json odd_view = route::event_view(odd);
    for (const auto& r : g->routes.routes)
      if (thrown_by_code(r->process(odd, env, &odd_view))) __builtin_trap();
  }
  return 0;
}
