// Registry, expression and route tests: every error kind with its line:col, and routing of
// the shipped example messages through the shipped example registry and routes; the
// tracking records the route and delivery stages write.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "adapters/emelding/emelding_codec.hpp"
#include "adapters/hl7v2/canonical.hpp"
#include "engine/core/crypto.hpp"
#include "engine/core/redact.hpp"
#include "engine/delivery/delivery.hpp"
#include "engine/event/json_read.hpp"
#include "engine/registry/registry.hpp"
#include "engine/route/expr.hpp"
#include "engine/route/route.hpp"
#include "engine/route/route_stage.hpp"
#include "engine/runtime/ingest.hpp"
#include "tests/support/test_env.hpp"

namespace budstikke {
namespace {

using config::Diagnostics;

std::string errors(const Diagnostics& d) {
  return d.format_all();
}

constexpr const char* kRegistry = R"(defaults:
  accepts: [kith/*]
systems:
  - id: st-olav
    name: St. Olavs hospital
    kind: hospital
    her_ids: ["100"]
    accepts: [kith/*, hl7v2/*, json]
    connector: {url: "http://127.0.0.1:1/x"}
  - id: gp-1
    name: Legekontor 1
    kind: gp
    her_ids: ["200"]
    tags: [kommune-1]
    connector: {url: "file:/tmp/out"}
groups:
  - columns: [nr]
    rows: [["1"], ["2"]]
    template:
      id: "kommune-{nr}"
      name: "Kommune {nr}"
      kind: municipality
      her_ids: ["30{nr}"]
      connector: {url: "mllp://127.0.0.1:2575"}
)";

std::shared_ptr<const registry::Registry> reg_of(const std::string& text, Diagnostics& d) {
  return registry::Registry::parse(text, "systems.yaml", d);
}

TEST(Registry, LoadsExplicitAndGeneratedSystems) {
  Diagnostics d;
  auto r = reg_of(kRegistry, d);
  ASSERT_FALSE(d.has_errors()) << errors(d);
  ASSERT_EQ(r->systems().size(), 4u);
  EXPECT_EQ(r->owner_of_her("302")->id, "kommune-2");
  EXPECT_EQ(r->find("kommune-1")->connector.type, "mllp");
  EXPECT_EQ(r->find("kommune-1")->connector.port, 2575);
  EXPECT_EQ(r->find("gp-1")->connector.path, "/tmp/out");
  EXPECT_TRUE(r->find("st-olav")->accepts_format("hl7v2/2.5"));
  EXPECT_FALSE(r->find("gp-1")->accepts_format("hl7v2/2.5"));
  EXPECT_TRUE(r->find("gp-1")->accepts_format("kith/epikrise/1.2"));
}

struct BadRegistry {
  const char* name;
  const char* text;
  const char* where;  // expected "line:col"
  const char* says;
};

TEST(Registry, EveryErrorKindHasItsPosition) {
  const BadRegistry cases[] = {
      {"unknown key",
       "systems:\n  - id: a\n    name: A\n    colour: red\n    connector: {url: \"file:/x\"}\n",
       "4:5", "unknown key"},
      {"missing name", "systems:\n  - id: a\n    connector: {url: \"file:/x\"}\n", "2:5",
       "required"},
      {"bad id", "systems:\n  - id: A B\n    name: A\n    connector: {url: \"file:/x\"}\n", "2:9",
       "lower case"},
      {"duplicate id",
       "systems:\n  - id: a\n    name: A\n    connector: {url: \"file:/x\"}\n  - id: a\n    name: "
       "B\n    connector: {url: \"file:/y\"}\n",
       "5:9", "duplicate system id"},
      {"bad scheme", "systems:\n  - id: a\n    name: A\n    connector: {url: \"ftp://x\"}\n",
       "4:22", "unknown scheme"},
      {"no port", "systems:\n  - id: a\n    name: A\n    connector: {url: \"mllp://x\"}\n", "4:22",
       "needs a port"},
      {"her not digits",
       "systems:\n  - id: a\n    name: A\n    her_ids: [x1]\n    connector: {url: \"file:/x\"}\n",
       "4:14", "1 to 9 digits"},
      {"her twice",
       "systems:\n  - id: a\n    name: A\n    her_ids: [\"1\"]\n    connector: {url: "
       "\"file:/x\"}\n  - "
       "id: b\n    name: B\n    her_ids: [\"1\"]\n    connector: {url: \"file:/y\"}\n",
       "8:14", "claimed by both"},
      {"bad format",
       "systems:\n  - id: a\n    name: A\n    accepts: [pdf]\n    connector: {url: \"file:/x\"}\n",
       "4:14", "format 'pdf'"},
      {"int range",
       "systems:\n  - id: a\n    name: A\n    concurrency: 0\n    connector: {url: \"file:/x\"}\n",
       "4:18", "at least 1"},
      {"unknown placeholder",
       "groups:\n  - columns: [n]\n    rows: [[\"1\"]]\n    template:\n      id: \"x-{m}\"\n      "
       "name: X\n      connector: {url: \"file:/x\"}\n",
       "5:11", "unknown placeholder {m}"},
      {"row width",
       "groups:\n  - columns: [n, m]\n    rows: [[\"1\"]]\n    template:\n      id: \"x-{n}\"\n    "
       "  "
       "name: X\n      connector: {url: \"file:/x\"}\n",
       "3:12", "1 values for 2 columns"},
      {"yaml syntax", "systems:\n  - id: [a\n", "3:1", "YAML"},
  };
  for (const auto& c : cases) {
    Diagnostics d;
    reg_of(c.text, d);
    const std::string all = errors(d);
    EXPECT_TRUE(d.has_errors()) << c.name;
    EXPECT_NE(all.find(std::string("systems.yaml:") + c.where + ":"), std::string::npos)
        << c.name << ": " << all;
    EXPECT_NE(all.find(c.says), std::string::npos) << c.name << ": " << all;
  }
}

// Retry waits: each the previous one times multiplier_percent / 100, capped at
// max_backoff_ms; the jitter spreads each wait uniformly within +- jitter_percent of it.
TEST(Registry, RetryWaitsGrowToTheirCapAndTheJitterStaysWithinItsShare) {
  Diagnostics d;
  auto r = reg_of(
      "systems:\n  - id: s\n    name: S\n    connector:\n      url: file:/tmp/x\n"
      "    retry:\n      max_attempts: 9\n      initial_backoff_ms: 100\n"
      "      multiplier_percent: 300\n      max_backoff_ms: 1000\n      jitter_percent: 10\n",
      d);
  ASSERT_FALSE(d.has_errors()) << d.format_all();
  registry::RetryPolicy p = r->find("s")->retry;
  EXPECT_EQ(p.backoff_ms(2), 100);
  EXPECT_EQ(p.backoff_ms(3), 300);
  EXPECT_EQ(p.backoff_ms(4), 900);
  EXPECT_EQ(p.backoff_ms(5), 1000);
  EXPECT_EQ(p.backoff_ms(9), 1000);
  std::mt19937_64 rng(42);
  std::set<int64_t> seen;
  double sum = 0;
  constexpr int kDraws = 2000;
  for (int i = 0; i < kDraws; ++i) {
    const int64_t w = p.wait_ms(4, rng);
    EXPECT_GE(w, 810);
    EXPECT_LE(w, 990);
    seen.insert(w);
    sum += static_cast<double>(w);
  }
  EXPECT_GT(seen.size(), 100u) << "the waits are spread";
  EXPECT_NEAR(sum / kDraws, 900.0, 10.0);
  p.jitter_percent = 0;
  EXPECT_EQ(p.wait_ms(4, rng), 900);
}

TEST(Registry, ShippedExampleHasAboutTwoHundredSystems) {
  Diagnostics d;
  auto r = registry::Registry::load(testenv::source_dir().string() + "/config/systems.yaml", d);
  ASSERT_FALSE(d.has_errors()) << errors(d);
  EXPECT_GE(r->systems().size(), 180u);
  EXPECT_LE(r->systems().size(), 220u);
  std::map<std::string, int> kinds;
  for (const auto& s : r->systems()) ++kinds[s.kind];
  for (const char* k : {"hospital", "department", "gp", "municipality", "lab", "national"})
    EXPECT_GT(kinds[k], 0) << k;
}

nlohmann::json eval(const std::string& text, const nlohmann::json& ev,
                    const registry::Registry* reg = nullptr) {
  route::CompileOptions o;
  o.registry = reg;
  auto c = route::Expr::compile(text, o);
  if (auto* e = std::get_if<route::ExprError>(&c)) {
    ADD_FAILURE() << text << ": " << e->message;
    return nullptr;
  }
  route::EvalContext ctx{&ev, reg, nullptr};
  return std::get<route::Expr>(c).eval(ctx);
}

TEST(Expr, OperatorsFunctionsAndPaths) {
  Diagnostics d;
  auto r = reg_of(kRegistry, d);
  const nlohmann::json ev = {
      {"type", "discharge_summary"},
      {"receiver", {{"her_id", "100"}, {"name", "St. Olavs hospital"}}},
      {"body", {{"diagnoses", {{{"code", "J18"}}, {{"code", "I10"}}}}, {"n", 3}}},
      {"occurred_at", "2026-11-20T10:00:00+01:00"}};
  EXPECT_EQ(eval("type == \"discharge_summary\"", ev), true);
  EXPECT_EQ(eval("receiver.her_id in system(\"st-olav\").her_ids", ev, r.get()), true);
  EXPECT_EQ(eval("\"J18\" in body.diagnoses.code", ev), true);
  EXPECT_EQ(eval("\"X\" not in body.diagnoses.code and not exists(body.missing)", ev), true);
  EXPECT_EQ(eval("body.n >= 3 and body.n < 4 and body.n + 1 == 4", ev), true);
  EXPECT_EQ(eval("starts_with(lower(receiver.name), \"st. olav\")", ev), true);
  EXPECT_EQ(eval("matches(receiver.name, \"^St\\\\. O\")", ev), true);
  EXPECT_EQ(eval("date(occurred_at)", ev), "2026-11-20");
  EXPECT_EQ(eval("days_between(\"2026-11-20\", \"2026-12-01\")", ev), 11);
  EXPECT_EQ(eval("len(body.diagnoses)", ev), 2);
  EXPECT_EQ(eval("body.diagnoses[1].code", ev), "I10");
  EXPECT_EQ(eval("coalesce(body.none, \"x\")", ev), "x");
  EXPECT_EQ(eval("owner(\"302\").kind", ev, r.get()), "municipality");
  EXPECT_EQ(eval("body.none.deeper == null", ev), true);
  EXPECT_EQ(eval("body.n > \"text\"", ev), false);  // mismatched types are never true
}

TEST(Expr, CompileErrorsSayWhere) {
  Diagnostics d;
  auto r = reg_of(kRegistry, d);
  struct Case {
    const char* text;
    size_t offset;
    const char* says;
  } cases[] = {
      {"type = \"x\"", 5, "use '=='"},
      {"type == \"x\" && true", 12, "use 'and'"},
      {"recever.her_id == \"1\"", 0, "unknown name 'recever'"},
      {"frobnicate(type)", 0, "unknown function"},
      {"lower(type, type)", 0, "takes 1 argument"},
      {"type == (\"x\"", 12, "expected ')'"},
      {"system(\"nope\").her_ids", 0, "unknown system 'nope'"},
      {"matches(type, \"(\")", 14, "invalid regular expression"},
      {"type == \"open", 8, "unterminated string"},
      {"", 0, "empty expression"},
  };
  for (const auto& c : cases) {
    route::CompileOptions o;
    o.registry = r.get();
    auto res = route::Expr::compile(c.text, o);
    auto* e = std::get_if<route::ExprError>(&res);
    ASSERT_NE(e, nullptr) << c.text;
    EXPECT_EQ(e->offset, c.offset) << c.text << ": " << e->message;
    EXPECT_NE(e->message.find(c.says), std::string::npos) << c.text << ": " << e->message;
  }
}

runtime::CodecRegistry codecs() {
  runtime::CodecRegistry c;
  c.add(std::make_shared<emelding::EmeldingCodec>(nullptr));
  c.add(std::make_shared<hl7v2::Hl7Codec>());
  return c;
}

TEST(Route, EveryErrorKindHasItsPosition) {
  Diagnostics rd;
  auto r = reg_of(kRegistry, rd);
  const auto cs = codecs();
  struct Case {
    const char* name;
    const char* text;
    const char* where;
    const char* says;
  } cases[] = {
      {"unknown key", "name: a\nfrom: [dialog]\nto: [receiver]\nfliter: x\n", "4:1", "unknown key"},
      {"missing to", "name: a\nfrom: [dialog]\n", "1:1", "required"},
      {"unknown type", "name: a\nfrom: [dialogue]\nto: [receiver]\n", "2:8", "unknown event type"},
      {"unknown system", "name: a\nfrom: [dialog]\nto: [st-olaf]\n", "3:6",
       "did you mean 'st-olav'"},
      {"filter error", "name: a\nfrom: [dialog]\nfilter: 'type == \"x\" && 1'\nto: [receiver]\n",
       "3:22", "use 'and'"},
      {"query error", "name: a\nfrom: [dialog]\nto:\n  - query: 'sytem.kind == \"gp\"'\n", "4:13",
       "unknown name 'sytem'"},
      {"render", "name: a\nfrom: [dialog]\nrender: [pdf]\nto: [receiver]\n", "3:10",
       "unknown format 'pdf'"},
      {"map target",
       "name: a\nfrom: [dialog]\nmap:\n  - set: event_id\n    value: '1'\nto: [receiver]\n", "4:10",
       "only body"},
      {"map value",
       "name: a\nfrom: [dialog]\nmap:\n  - set: body.x\n    value: 'lower('\nto: [receiver]\n",
       "5:19", "expected a value"},
      {"map step", "name: a\nfrom: [dialog]\nmap:\n  - copy: body.x\nto: [receiver]\n", "4:5",
       "set, rename or remove"},
      {"bad name", "name: A!\nfrom: [dialog]\nto: [receiver]\n", "1:7", "lower case"},
  };
  for (const auto& c : cases) {
    Diagnostics d;
    auto route = route::parse_route(c.text, "r.yaml", *r, cs, d);
    const std::string all = errors(d);
    EXPECT_EQ(route, nullptr) << c.name;
    EXPECT_NE(all.find(std::string("r.yaml:") + c.where + ":"), std::string::npos)
        << c.name << ": " << all;
    EXPECT_NE(all.find(c.says), std::string::npos) << c.name << ": " << all;
  }
}

std::optional<Event> decode_file(const runtime::CodecRegistry& cs, const std::string& path) {
  const std::string bytes = testenv::read_file(path);
  const runtime::Codec* c = cs.detect(bytes);
  if (!c) return std::nullopt;
  runtime::DecodeContext ctx{"test", path, false, "k"};
  auto r = c->decode(bytes, ctx);
  auto* out = std::get_if<runtime::CodecOutput>(&r);
  if (!out || out->events.empty()) return std::nullopt;
  return out->events.front();
}

// A route loop reads each event with read_json: for every example message's canonical
// record (the engine's own writing) the fast reader takes it, and gives nlohmann's value.
TEST(RouteStage, EveryExampleEventIsReadByTheFastJsonReader) {
  const runtime::CodecRegistry cs = codecs();
  int read = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(testenv::source_dir() / "examples/messages")) {
    auto e = decode_file(cs, entry.path().string());
    if (!e) continue;  // the broken examples
    e->received_at = "2026-12-06T07:00:00.000Z";
    const std::string text = to_json_string(*e);
    const auto fast = read_json_fast(text);
    ASSERT_TRUE(fast.has_value()) << entry.path();
    const nlohmann::json slow = nlohmann::json::parse(text);
    EXPECT_EQ(fast->dump(), slow.dump()) << entry.path();
    EXPECT_EQ(*fast, slow) << entry.path();
    ++read;
  }
  EXPECT_GE(read, 10);
}

// The shipped registry and routes, loaded as the engine loads them.
struct Shipped {
  Diagnostics d;
  std::shared_ptr<const registry::Registry> reg =
      registry::Registry::load(testenv::source_dir().string() + "/config/systems.yaml", d);
  const runtime::CodecRegistry cs = codecs();
  route::RouteSet routes =
      route::load_routes(testenv::source_dir().string() + "/routes", *reg, cs, d);
  route::RouteEnv env{reg.get(), &cs, nullptr};
};

// The shipped routes, registry and example messages: who gets what.
TEST(Route, ExampleMessagesGoWhereTheExampleRoutesSay) {
  const Shipped shipped;
  ASSERT_FALSE(shipped.d.has_errors()) << errors(shipped.d);
  const auto& cs = shipped.cs;
  const auto& routes = shipped.routes;
  const auto& env = shipped.env;
  auto deliveries = [&](const std::string& file) {
    std::map<std::string, std::vector<std::string>> out;  // route -> systems
    auto e = decode_file(cs, testenv::source_dir().string() + "/examples/messages/" + file);
    EXPECT_TRUE(e) << file;
    if (!e) return out;
    for (const auto& r : routes.routes) {
      auto res = r->process(*e, env);
      if (!res.matched) continue;
      // '*': the delivery whose outcome answers the sender with a receipt.
      for (const auto& dl : res.deliveries)
        out[r->name()].push_back(dl.system + ":" + dl.format + (dl.answers_sender ? "*" : ""));
      for (const auto& f : res.failures) out[r->name()].push_back("FAILED " + f.reason);
    }
    return out;
  };
  auto dialog = deliveries("dialog-notat-gp-to-hospital.xml");
  ASSERT_EQ(dialog.size(), 1u);
  EXPECT_EQ(dialog["dialog-both-ways"],
            std::vector<std::string>{"nordvik-dips:kith/dialogmelding/1.0*"});
  auto result = deliveries("svarrapport-lab-result.xml");
  // The GP office answers the sender; the abnormal result is copied to helsedata as JSON.
  EXPECT_EQ(
      result["lab-result-to-requester"],
      (std::vector<std::string>{"fjordbyen-legesenter:kith/svarrapport/1.4*", "helsedata:json"}));
  auto oru = deliveries("oru-r01-lab-result.hl7");
  EXPECT_EQ(oru["lab-result-to-requester"],
            (std::vector<std::string>{"nordvik-dips:hl7v2/2.5*", "helsedata:json"}));
  auto adt = deliveries("adt-a01-admission.hl7");
  ASSERT_EQ(adt.size(), 1u);
  const auto& fan = adt["adt-fanout"];
  EXPECT_EQ(fan.size(), 21u);  // 20 department systems + Kjernejournal
  EXPECT_NE(std::find(fan.begin(), fan.end(), "kjernejournal:json"), fan.end());
  EXPECT_NE(std::find(fan.begin(), fan.end(), "nordvik-barn:hl7v2/2.5"), fan.end());
}

// matches() reads event data, which may be long or built to make a regex backtrack: it
// decides long texts (std::regex, used before, recursed once per character and overflowed
// an 8 MB stack at ~10,000-25,000 characters, and looped for ever on "(a*)*b" against 25
// characters) and refuses, with an EvalError naming the regex, what it cannot decide.
TEST(Expr, MatchesDecidesLongTextsAndRefusesEndlessBacktracking) {
  const nlohmann::json ev = {
      {"body", {{"long", std::string(1000000, 'a')}, {"hostile", std::string(40, 'a')}}}};
  EXPECT_EQ(eval("matches(body.long, \"^[a-z]+$\")", ev), true);
  EXPECT_EQ(eval("matches(body.long, \"(a|b)+\")", ev), true);
  EXPECT_EQ(eval("matches(body.long, \"^a*b\")", ev), false);
  EXPECT_EQ(eval("matches(body.hostile, \"^\\\\w{40}$\")", ev), true);  // ECMAScript syntax
  try {
    (void)eval("matches(body.hostile, \"(a*)*b\")", ev);
    ADD_FAILURE() << "no EvalError";
  } catch (const route::EvalError& e) {
    EXPECT_NE(std::string(e.what()).find("matches(\"(a*)*b\") could not decide on a text of 40"),
              std::string::npos)
        << e.what();
  }
}

// A route whose filter cannot be decided on an event fails that event, with the reason (the
// route stage writes it to route.failed and the tracking topic), and goes on with the next.
TEST(Route, AnUndecidableFilterFailsTheEventNotTheRoute) {
  Diagnostics d;
  auto reg = reg_of(kRegistry, d);
  const runtime::CodecRegistry cs = codecs();
  auto r = route::parse_route(
      "name: picky\nfrom: [dialog]\nfilter: 'matches(body.note, \"(a*)*b\")'\nrender: "
      "[json]\nto: [st-olav]\n",
      "picky.yaml", *reg, cs, d);
  ASSERT_TRUE(r) << errors(d);
  const route::RouteEnv env{reg.get(), &cs, nullptr};
  Event e;
  e.type = EventType::kDialog;
  e.event_id = "ev-1";
  e.source.format = "kith";
  e.source.message_id = "msg-1";
  e.body = {{"note", std::string(40, 'a')}};
  const auto failed = r->process(e, env);
  EXPECT_TRUE(failed.matched);
  EXPECT_TRUE(failed.deliveries.empty());
  ASSERT_EQ(failed.failures.size(), 1u);
  EXPECT_EQ(failed.failures[0].system, "");
  EXPECT_NE(failed.failures[0].reason.find("route picky: matches(\"(a*)*b\") could not decide"),
            std::string::npos)
      << failed.failures[0].reason;
  EXPECT_EQ(failed.event.event_id, "ev-1");  // the event travels with its failure
  // The same on the headers alone (the route stage asks before it parses the event).
  auto by_format = route::parse_route(
      "name: by-format\nfrom: [dialog]\nfilter: 'matches(format, \"(a*)*b\")'\nrender: "
      "[json]\nto: [st-olav]\n",
      "by-format.yaml", *reg, cs, d);
  ASSERT_TRUE(by_format) << errors(d);
  ASSERT_TRUE(by_format->decides_on_headers());
  const std::string hostile(40, 'a');
  bool passes = true;
  EXPECT_NO_THROW(passes = by_format->passes_over("dialog", hostile, env));
  EXPECT_FALSE(passes) << "an undecided header test ruled the event out";
  EXPECT_TRUE(by_format->passes_over("dialog", "kith", env));  // decided: no match
  // The same route on a text it can decide: delivered as usual.
  e.body = {{"note", "aab"}};
  Event moved = e;
  const auto ok = r->process(std::move(moved), env);
  EXPECT_TRUE(ok.matched);
  EXPECT_TRUE(ok.failures.empty());
  ASSERT_EQ(ok.deliveries.size(), 1u);
  EXPECT_EQ(ok.deliveries[0].system, "st-olav");
}

// The route stage hands process() an event it no longer needs, which is moved into the
// result; tests and the CLI pass one they keep, which is copied. Both must give the same
// result for every shipped route and a route with a map, on every example message.
TEST(Route, AMovedEventGivesTheSameResultAsACopiedOne) {
  Shipped shipped;
  ASSERT_FALSE(shipped.d.has_errors()) << errors(shipped.d);
  const auto& cs = shipped.cs;
  const auto& env = shipped.env;
  auto mapped = route::parse_route(
      "name: m\nfrom: [admission, lab_result]\nmap:\n  - set: body.note\n    value: '\"seen by "
      "\" + receiver.name'\n  - rename: body.note\n    to: body.remark\nrender: [json]\nto: "
      "[receiver, kjernejournal]\n",
      "m.yaml", *shipped.reg, cs, shipped.d);
  ASSERT_TRUE(mapped) << errors(shipped.d);
  std::vector<const route::Route*> all{mapped.get()};
  for (const auto& r : shipped.routes.routes) all.push_back(r.get());
  auto text = [](const route::RouteResult& r) {
    nlohmann::json j = {{"matched", r.matched},
                        {"event", to_json(r.event)},
                        {"receipt_codec", r.receipt_codec},
                        {"receipt_context", r.receipt_context.value_or(nlohmann::json())},
                        {"skipped", r.skipped}};
    for (const auto& dl : r.deliveries)
      j["deliveries"].push_back({dl.system, dl.format, dl.content_type, dl.payload, dl.job_id,
                                 dl.idempotency_key, dl.answers_sender});
    for (const auto& f : r.failures) j["failures"].push_back({f.system, f.reason, f.code});
    return j.dump();
  };
  int matched = 0;
  int delivered = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(testenv::source_dir() / "examples/messages")) {
    const auto e = decode_file(cs, entry.path().string());
    if (!e) continue;  // the broken examples
    for (const auto* r : all) {
      const auto copied = r->process(*e, env);
      Event spare = *e;
      const auto moved = r->process(std::move(spare), env);
      EXPECT_EQ(text(moved), text(copied)) << r->name() << " " << entry.path().filename();
      matched += copied.matched ? 1 : 0;
      delivered += static_cast<int>(copied.deliveries.size());
    }
  }
  // Not a vacuous comparison: routes matched, the map route among them, and jobs were made.
  EXPECT_GE(matched, 8);
  EXPECT_GE(delivered, 30);
}

// The route stage asks passes_over() before it parses an event: it may rule out only
// events process() would not match, and only by the filter's parts that read type/format.
TEST(Route, HeadersAloneRuleOutOnlyEventsTheRouteWouldNotMatch) {
  Shipped shipped;
  ASSERT_FALSE(shipped.d.has_errors()) << errors(shipped.d);
  const auto& env = shipped.env;
  auto route = [&](const std::string& from, const std::string& filter) {
    auto r = route::parse_route(
        "name: h\nfrom: [" + from + "]\nfilter: '" + filter + "'\nrender: [json]\nto: [receiver]\n",
        "h.yaml", *shipped.reg, shipped.cs, shipped.d);
    EXPECT_TRUE(r) << filter << errors(shipped.d);
    return r;
  };
  const auto kith_and = route("admission", R"(format == "kith" and receiver.her_id == "1")");
  const auto kith_or = route("admission", R"(format == "kith" or receiver.her_id == "1")");
  const auto lowered = route("admission, lab_result", R"(lower(format) in ["hl7v2"])");
  const auto clocked =
      route("admission, discharge", R"(now() > "2000-01-01" and type == "discharge")");
  ASSERT_TRUE(kith_and && kith_or && lowered && clocked);
  EXPECT_TRUE(kith_and->decides_on_headers());
  EXPECT_FALSE(kith_or->decides_on_headers());
  const auto* lab_results = shipped.routes.find("lab-result-to-requester");
  ASSERT_NE(lab_results, nullptr);
  EXPECT_FALSE(lab_results->decides_on_headers());
  using O = std::optional<std::string_view>;
  EXPECT_TRUE(kith_and->passes_over(O("admission"), O("hl7v2"), env));
  EXPECT_TRUE(kith_and->passes_over(std::nullopt, O("hl7v2"), env));
  EXPECT_FALSE(kith_and->passes_over(O("admission"), O("kith"), env));
  EXPECT_FALSE(kith_and->passes_over(O("admission"), std::nullopt, env));
  EXPECT_TRUE(kith_and->passes_over(O("lab_result"), O("kith"), env));  // a type it does not read
  EXPECT_FALSE(kith_or->passes_over(O("admission"), O("hl7v2"), env));
  EXPECT_TRUE(lowered->passes_over(O("lab_result"), O("kith"), env));
  EXPECT_FALSE(lowered->passes_over(O("lab_result"), O("hl7v2"), env));
  EXPECT_TRUE(clocked->passes_over(O("admission"), O("kith"), env));
  EXPECT_FALSE(clocked->passes_over(O("discharge"), O("kith"), env));

  std::vector<const route::Route*> all{kith_and.get(), kith_or.get(), lowered.get(), clocked.get()};
  for (const auto& r : shipped.routes.routes) all.push_back(r.get());
  int passed_over = 0;
  std::set<std::string> shipped_passing;
  for (const auto& entry :
       std::filesystem::directory_iterator(testenv::source_dir() / "examples/messages")) {
    const auto e = decode_file(shipped.cs, entry.path().string());
    if (!e) continue;  // the broken examples
    std::map<std::string, std::string> headers;
    for (auto& [k, v] : kafka_headers(*e)) headers[k] = v;
    const O type = headers.at(kTypeHeader);
    const O format = headers.at(kSourceFormatHeader);
    for (const auto* r : all) {
      EXPECT_FALSE(r->passes_over(std::nullopt, std::nullopt, env)) << r->name();
      if (!r->passes_over(type, format, env)) continue;
      ++passed_over;
      if (r->file() != "h.yaml") shipped_passing.insert(r->name() + " " + std::string(*format));
      EXPECT_FALSE(r->process(*e, env).matched) << r->name() << " " << entry.path().filename();
    }
  }
  EXPECT_GE(passed_over, 20);
  // The shipped routes that share topics tell HL7 v2 and KITH apart by the header alone.
  EXPECT_EQ(shipped_passing.count("plo-hospital-to-municipality hl7v2"), 1u);
  EXPECT_EQ(shipped_passing.count("adt-fanout kith"), 1u);
}

TEST(Route, MapRenderAndUnknownReceiver) {
  Diagnostics d;
  auto reg = reg_of(kRegistry, d);
  const auto cs = codecs();
  auto route = route::parse_route(
      "name: m\nfrom: [admission]\nmap:\n  - set: body.note\n    value: '\"seen by \" + "
      "receiver.name'\n  - rename: body.note\n    to: body.remark\nrender: [json]\nto: [receiver, "
      "gp-1, st-olav]\n",
      "m.yaml", *reg, cs, d);
  ASSERT_TRUE(route) << errors(d);
  auto e =
      decode_file(cs, testenv::source_dir().string() + "/examples/messages/adt-a01-admission.hl7");
  ASSERT_TRUE(e);
  route::RouteEnv env{reg.get(), &cs, nullptr};
  auto res = route->process(*e, env);
  ASSERT_TRUE(res.matched);
  EXPECT_EQ(res.event.body.value("remark", ""), "seen by REGION");
  EXPECT_FALSE(res.event.body.contains("note"));
  // The receiver (REGION, no HER-id) is unknown: a failure with E21; gp-1 does not accept
  // json; st-olav gets the canonical JSON.
  ASSERT_EQ(res.failures.size(), 2u);
  EXPECT_EQ(res.failures[0].code, "E21");
  EXPECT_NE(res.failures[1].reason.find("gp-1"), std::string::npos);
  ASSERT_EQ(res.deliveries.size(), 1u);
  EXPECT_EQ(res.deliveries[0].system, "st-olav");
  EXPECT_EQ(res.deliveries[0].format, "json");
  EXPECT_NE(res.deliveries[0].payload.find("seen by REGION"), std::string::npos);
}

TEST(Expr, KnowsWhetherItReadsTheEventAndSplitsConjunctions) {
  route::CompileOptions o;
  o.extra_roots = {"system"};
  auto compile = [&](const char* text) {
    auto c = route::Expr::compile(text, o);
    EXPECT_TRUE(std::holds_alternative<route::Expr>(c)) << text;
    return std::get<route::Expr>(c);
  };
  EXPECT_FALSE(compile("system.kind == \"gp\" and \"adt\" in system.tags").reads_event());
  EXPECT_FALSE(
      compile("lower(system.name) == \"x\" or len(system(\"a\").her_ids) > 0").reads_event());
  EXPECT_TRUE(compile("system.kind == type").reads_event());
  EXPECT_TRUE(compile("not exists(body.x)").reads_event());
  EXPECT_TRUE(compile("date(now()) > \"2026-01-01\"").reads_event());  // the clock
  EXPECT_TRUE(compile("[1, sender.her_id][1] == 2").reads_event());
  const auto parts =
      compile("system.kind == \"gp\" and (type == \"a\" or true) and not system.enabled")
          .conjuncts();
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_FALSE(parts[0].reads_event());
  EXPECT_TRUE(parts[1].reads_event());
  EXPECT_FALSE(parts[2].reads_event());
  EXPECT_EQ(compile("type == \"a\" or system.kind == \"gp\"").conjuncts().size(), 1u);
}

// A query's destinations are the systems the whole expression holds for, though the
// conjuncts that read no event are evaluated once per registry; a new registry (a reload)
// is planned anew.
TEST(Route, QueryDestinationsAreTheSystemsTheQueryHoldsFor) {
  Diagnostics d;
  auto reg = reg_of(kRegistry, d);
  // The reloaded registry: the municipalities' systems are GP systems now.
  std::string changed = kRegistry;
  changed.replace(changed.find("kind: municipality"), 18, "kind: gp");
  auto reg2 = reg_of(changed, d);
  ASSERT_FALSE(d.has_errors()) << errors(d);
  ASSERT_EQ(reg2->find("kommune-2")->kind, "gp");
  const auto cs = codecs();
  auto e =
      decode_file(cs, testenv::source_dir().string() + "/examples/messages/adt-a01-admission.hl7");
  ASSERT_TRUE(e);
  const nlohmann::json view = route::event_view(*e);
  const char* queries[] = {
      "system.kind == \"municipality\"",
      "system.kind == \"hospital\" and type == \"admission\"",
      "system.kind == \"hospital\" and type == \"discharge\"",
      "type == \"admission\" and (system.id == \"gp-1\" or system.kind == \"municipality\")",
      "\"kommune-1\" in system.tags or type == \"admission\" and system.kind != \"gp\"",
      "date(now()) >= \"2000-01-01\" and system.kind == \"gp\" and exists(body)",
      "system.id in [\"kommune-2\", \"st-olav\"] and not (type == \"x\")",
  };
  int nonempty = 0;
  for (const char* q : queries) {
    auto route = route::parse_route(std::string("name: q\nfrom: [admission]\nrender: [json]\nto:\n"
                                                "  - query: '") +
                                        q + "'\n",
                                    "q.yaml", *reg, cs, d);
    ASSERT_TRUE(route) << q << ": " << errors(d);
    route::CompileOptions o;
    o.extra_roots = {"system"};
    const auto whole = std::get<route::Expr>(route::Expr::compile(q, o));
    for (const auto* r : {reg.get(), reg2.get(), reg.get()}) {
      std::set<std::string> expected, got;
      for (const auto& s : r->systems()) {
        const route::EvalContext c{&view, r, &r->json_of(s.id)};
        if (whole.test(c)) expected.insert(s.id);
      }
      route::RouteEnv env{r, &cs, nullptr};
      const auto res = route->process(*e, env);
      // A system that does not take JSON is a failure naming it, the others deliveries.
      for (const auto& dv : res.deliveries) got.insert(dv.system);
      for (const auto& f : res.failures) got.insert(f.system);
      for (const auto& id : res.skipped) got.insert(id);
      EXPECT_EQ(got, expected) << q << " with " << r->systems().size() << " systems";
      nonempty += expected.empty() ? 0 : 1;
    }
  }
  EXPECT_GE(nonempty, 15);  // the cases route somewhere, not only nowhere
}

}  // namespace
}  // namespace budstikke

namespace budstikke {
namespace {

// A receipt names every HER-id its addressee can be reached by, most specific first, so the
// receipts route finds the hospital's system when the department has none of its own.
TEST(Receipts, RecordCarriesEveryHerIdOfTheAddressee) {
  Party p;
  p.department.her_id = "8200010";
  p.organisation.her_id = "8200001";
  const auto rec =
      runtime::receipt_record("x.", "k", "<AppRec/>", "kith/apprec/1.0", p, "m-1", "ok", "e-1");
  EXPECT_EQ(rec.topic, "x.apprec.outbound");
  std::string hers;
  for (const auto& h : rec.headers)
    if (h.key == "bs-receiver-her") hers = h.value;
  EXPECT_EQ(hers, "8200010,8200001");
  EXPECT_EQ(runtime::receipt_her_ids(hers), (std::vector<std::string>{"8200010", "8200001"}));
  EXPECT_TRUE(runtime::receipt_her_ids("").empty());
  Diagnostics d;
  auto reg = registry::Registry::load(testenv::source_dir().string() + "/config/systems.yaml", d);
  const registry::System* s = nullptr;
  for (const auto& her : runtime::receipt_her_ids(hers))
    if ((s = reg->owner_of_her(her))) break;
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->id, "nordvik-dips");  // 8200010 has no system of its own
}

// A route batch lingers like a producer: batch_ms from when its first event was written,
// so an event that waited while the previous transaction committed does not wait again.
// Job ids and message ids are made from seeds: they must stay the same across versions (a
// job id is what tells a replayed job from a new one), whatever way they are computed.
TEST(Ids, UuidFromSeedIsTheFirstHalfOfItsSha256AsAVersion4Uuid) {
  // From the FIPS 180-2 vectors: sha256("abc") = ba7816bf8f01cfea414140de5dae2223...,
  // sha256("") = e3b0c44298fc1c149afbf4c8996fb924...
  EXPECT_EQ(runtime::uuid_from_seed("abc"), "ba7816bf-8f01-4fea-8141-40de5dae2223");
  EXPECT_EQ(runtime::uuid_from_seed(""), "e3b0c442-98fc-4c14-9afb-f4c8996fb924");
  // Against the way it was computed until session 34, over seeds that give every variant digit.
  auto before = [](std::string_view seed) {
    std::string h = sha256_hex(seed).substr(0, 32);
    h[12] = '4';
    static constexpr char kVariant[] = "89ab";
    h[16] = kVariant[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20, 12);
  };
  std::set<char> variants;
  for (int i = 0; i < 2000; ++i) {
    const std::string seed = "event-" + std::to_string(i) + "|route|system";
    const std::string id = runtime::uuid_from_seed(seed);
    ASSERT_EQ(id, before(seed)) << seed;
    variants.insert(sha256_hex(seed)[16]);
  }
  EXPECT_EQ(variants.size(), 16U);  // every hex digit was the variant digit at least once
}

TEST(RouteBatchWindow, CountsFromWhenTheFirstEventWasWritten) {
  using std::chrono::milliseconds;
  const int64_t now = 1'800'000'000'000;
  EXPECT_EQ(route::batch_window_left(milliseconds(20), now, now), milliseconds(20));
  EXPECT_EQ(route::batch_window_left(milliseconds(20), now - 5, now), milliseconds(15));
  EXPECT_EQ(route::batch_window_left(milliseconds(20), now - 20, now), milliseconds(0));
  EXPECT_EQ(route::batch_window_left(milliseconds(20), now - 3'600'000, now), milliseconds(0));
  // No timestamp, or a writer's clock ahead of this one: the whole window, never more.
  EXPECT_EQ(route::batch_window_left(milliseconds(20), -1, now), milliseconds(20));
  EXPECT_EQ(route::batch_window_left(milliseconds(20), 0, now), milliseconds(20));
  EXPECT_EQ(route::batch_window_left(milliseconds(20), now + 500, now), milliseconds(20));
  EXPECT_EQ(route::batch_window_left(milliseconds(0), now - 5, now), milliseconds(0));
}

// The route's tracking record is written as text; it must be what nlohmann's dump() gives
// for the same value (the records before it was written as text), escapes and all.
TEST(RouteTracking, SameBytesAsNlohmann) {
  route::RouteResult r;
  r.deliveries.push_back({"gp-1", "kith/epikrise/1.2", "application/xml", "x", "job-1", "", true});
  r.deliveries.push_back(
      {"kommune-\"2\"", "hl7v2/2.5", "application/hl7-v2", "", "job-2", "", false});
  r.failures.push_back({"", "no system answers for HER-id 999; f\u00f8dt 01017012345\n", "E21"});
  r.skipped = {"old-system", "tab\there"};
  const std::string now = "2026-12-01T10:00:00.123Z";
  nlohmann::json want = {{"state", "routed"},   {"at", now},
                         {"route", "epikrise"}, {"event_id", "ev-\u00e6"},
                         {"message_id", "m-1"}, {"destinations", nlohmann::json::array()}};
  for (const auto& d : r.deliveries)
    want["destinations"].push_back(
        {{"system", d.system}, {"format", d.format}, {"job_id", d.job_id}});
  nlohmann::json fs = nlohmann::json::array();
  for (const auto& f : r.failures)
    fs.push_back({{"system", f.system}, {"reason", redact_identity_numbers(f.reason)}});
  want["failures"] = fs;
  want["skipped_disabled"] = r.skipped;
  want["engine"] = "bs-1";
  EXPECT_EQ(route::route_tracking(r, "routed", now, "epikrise", "ev-\u00e6", "m-1", "bs-1"),
            want.dump());
  EXPECT_EQ(want.dump().find("01017012345"), std::string::npos);

  // Nothing routed: an empty destination list, no failures or skipped members.
  route::RouteResult none;
  const nlohmann::json want_none = {
      {"state", "unrouted"}, {"at", now},        {"route", "r"},
      {"event_id", "e"},     {"message_id", ""}, {"destinations", nlohmann::json::array()}};
  EXPECT_EQ(route::route_tracking(none, "unrouted", now, "r", "e", ""), want_none.dump());
}

// The records the route stage (and a replay of route.failed) writes for one event: a job
// carries the receipt only to the addressee; a failure holds the event, names the systems
// the same pass delivered to, and keeps identity numbers out of its headers.
TEST(RouteRecords, JobsAndFailuresCarryWhatAReplayNeeds) {
  Event e;
  e.type = EventType::kAdmission;
  e.event_id = "ev-1";
  e.key = "p:abc";
  e.received_at = "2026-12-08T00:00:00.000Z";
  e.source.format = "hl7v2";
  e.source.message_id = "MSG-1";
  e.body = {{"ward", "B4"}};
  const nlohmann::json receipt = {{"apprec_version", "1.0"}};
  const route::JobMeta meta{"adt",           "ev-1", "MSG-1", "tk-1",  e.received_at,
                            "1765152000000", "pr-1", "kith",  &receipt};
  const auto header = [](const bus::Record& r, const std::string& name) {
    for (const auto& h : r.headers)
      if (h.key == name) return std::optional<std::string>(h.value);
    return std::optional<std::string>();
  };
  auto to_addressee =
      route::job_record("deliver.gp-1", e.key,
                        {"gp-1", "json", "application/json", "{}", "job-1", "MSG-1", true}, meta);
  EXPECT_EQ(to_addressee.topic, "deliver.gp-1");
  EXPECT_EQ(to_addressee.key, "p:abc");
  EXPECT_EQ(to_addressee.value, "{}");
  EXPECT_EQ(header(to_addressee, delivery::header::kJobId), "job-1");
  EXPECT_EQ(header(to_addressee, delivery::header::kSystem), "gp-1");
  EXPECT_EQ(header(to_addressee, delivery::header::kIdempotencyKey), "MSG-1");
  EXPECT_EQ(header(to_addressee, delivery::header::kPatientRef), "pr-1");
  EXPECT_EQ(header(to_addressee, delivery::header::kReceiptCodec), "kith");
  EXPECT_EQ(header(to_addressee, delivery::header::kReceipt), receipt.dump());
  auto copy =
      route::job_record("deliver.kommune-1", e.key,
                        {"kommune-1", "json", "application/json", "{}", "job-2", "", false}, meta);
  EXPECT_FALSE(header(copy, delivery::header::kReceipt));
  EXPECT_FALSE(header(copy, delivery::header::kReceiptCodec));

  const route::RouteFailure f{"", "no system answers for the receiver (fnr 01017012345)", "E21"};
  const auto rec =
      route::route_failed_record("pfx.", "adt", e, "MSG-1", f, "now", {"gp-1", "kommune-1"});
  EXPECT_EQ(rec.topic, "pfx.route.failed");
  EXPECT_EQ(rec.key, "p:abc");
  const auto j = nlohmann::json::parse(rec.value);
  EXPECT_EQ(j["delivered_to"], nlohmann::json::array({"gp-1", "kommune-1"}));
  EXPECT_EQ(j["code"], "E21");
  EXPECT_EQ(j["system"], "");
  auto back = event_from_json(j["event"]);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, e);
  const auto reason = header(rec, delivery::header::kReason);
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->find("01017012345"), std::string::npos) << *reason;
  // Nothing delivered: no delivered_to member.
  EXPECT_FALSE(
      nlohmann::json::parse(route::route_failed_record("", "adt", e, "MSG-1", f, "now", {}).value)
          .contains("delivered_to"));
}

// An outcome of a delivery of event ev-1 by the ADT route. OutcomeTracking holds views:
// the arguments must outlive it (string literals do).
delivery::OutcomeTracking adt_outcome(std::string_view state, std::string_view job_id,
                                      std::string_view system) {
  delivery::OutcomeTracking o;
  o.state = state;
  o.event_id = "ev-1";
  o.job_id = job_id;
  o.route = "adt-fanout";
  o.system = system;
  return o;
}

// A delivery outcome's tracking record, written as text: the bytes nlohmann's dump() gives
// for the same value, the receiver's answer redacted.
TEST(DeliveryTracking, SameBytesAsNlohmann) {
  delivery::OutcomeTracking o = adt_outcome("delivered", "job-\u00f8", "st-olav-kir");
  o.message_id = "a1b2";
  o.detail = "MSH|^~\\&|X\rMSA|AA|m-1|pasient 13116900216\x01";
  o.attempts = 2;
  o.latency_ms = 37;
  o.engine = "bs-2";
  const std::string at = "2026-12-01T10:00:00.123Z";
  nlohmann::json want = {{"state", "delivered"},
                         {"at", at},
                         {"engine", "bs-2"},
                         {"event_id", "ev-1"},
                         {"job_id", "job-\u00f8"},
                         {"route", "adt-fanout"},
                         {"system", "st-olav-kir"},
                         {"attempts", 2},
                         {"detail", redact_identity_numbers(o.detail)},
                         {"message_id", "a1b2"},
                         {"latency_ms", 37}};
  EXPECT_EQ(delivery::outcome_tracking_json(o, at), want.dump());
  EXPECT_EQ(delivery::outcome_tracking_json(o, at).find("13116900216"), std::string::npos);

  // No detail, no message id, no ingest time, no engine name: those members are left out.
  o.detail = {};
  o.message_id = {};
  o.latency_ms.reset();
  o.engine = {};
  for (const char* k : {"detail", "message_id", "latency_ms", "engine"}) want.erase(k);
  EXPECT_EQ(delivery::outcome_tracking_json(o, at), want.dump());
}

// After a restart the delivery stage takes the job id of each "delivered" tracking record
// from its text. A receiver's answer that imitates those members sits inside a string,
// escaped, so it cannot stand in for them.
TEST(DeliveryTracking, DeliveredJobIdIsReadFromTheRecordText) {
  delivery::OutcomeTracking o =
      adt_outcome("delivered", "0b6c2d4e-7f1a-4e0b-9c3d-5a6b7c8d9e0f", "nordvik-akutt");
  o.detail = R"(MSA|AA|m-1 "job_id":"forged","state":"delivered" \)";
  o.attempts = 1;
  const std::string at = "2026-12-03T10:00:00.000Z";
  EXPECT_EQ(delivery::delivered_job_id(delivery::outcome_tracking_json(o, at)), o.job_id);
  o.detail = {};
  EXPECT_EQ(delivery::delivered_job_id(delivery::outcome_tracking_json(o, at)), o.job_id);
  // Not delivered: no id, whatever the answer says.
  o.detail = R"(MSA|AE|m-1 "state":"delivered")";
  for (const char* state : {"dead_lettered", "attempt_failed"}) {
    o.state = state;
    EXPECT_EQ(delivery::delivered_job_id(delivery::outcome_tracking_json(o, at)), "") << state;
  }
  // A job id that had to be escaped is not trusted (it is never skipped); nor is other text.
  o.state = "delivered";
  o.job_id = "job\"1";
  EXPECT_EQ(delivery::delivered_job_id(delivery::outcome_tracking_json(o, at)), "");
  EXPECT_EQ(delivery::delivered_job_id(""), "");
  EXPECT_EQ(delivery::delivered_job_id(R"({"state":"delivered"})"), "");
  EXPECT_EQ(delivery::delivered_job_id(R"({"job_id":"","state":"delivered"})"), "");
}

// delivery.job_topics: route. The delivery stage subscribes to every jobs.<route> topic under
// its prefix with a regex, so a prefix's regex characters must match only themselves.
TEST(RouteJobTopics, TopicNamesAndTheSubscriptionPattern) {
  using delivery::route_jobs_pattern;
  using delivery::route_jobs_topic;
  EXPECT_EQ(route_jobs_topic("", "adt-fanout"), "jobs.adt-fanout");
  EXPECT_EQ(route_jobs_topic("test.1-", "adt-fanout"), "test.1-jobs.adt-fanout");
  EXPECT_EQ(route_jobs_pattern(""), "^jobs\\..+");
  const std::string p = route_jobs_pattern("t.1+");
  EXPECT_EQ(p, "^t\\.1\\+jobs\\..+");
  const std::regex re(p, std::regex::extended);
  EXPECT_TRUE(std::regex_search("t.1+jobs.adt-fanout", re));
  EXPECT_FALSE(std::regex_search("tx11jobs.adt-fanout", re));  // '.' and '+' are literal
  EXPECT_FALSE(std::regex_search("t.1+jobs.", re));            // a route name follows
  EXPECT_FALSE(std::regex_search("t.1+deliver.nordvik-dips", re));
  // The delivery topics of a registry get a jobs.<route> topic for each route named.
  Diagnostics d;
  const auto reg =
      registry::Registry::load(testenv::source_dir().string() + "/config/systems.yaml", d);
  ASSERT_FALSE(d.has_errors()) << d.format_all();
  const auto topics = delivery::delivery_topics("p-", *reg, {"a", "b"});
  EXPECT_EQ(topics[0].name, "p-jobs.a");
  EXPECT_EQ(topics[1].name, "p-jobs.b");
  EXPECT_EQ(topics[0].partitions, -1) << "the engine's partition count, keyed by patient";
  // delivery.job_topic_partitions sets theirs, and only theirs.
  const auto one = delivery::delivery_topics("p-", *reg, {"a"}, 1);
  const auto dflt = delivery::delivery_topics("p-", *reg, {"a"});
  EXPECT_EQ(one[0].name, "p-jobs.a");
  EXPECT_EQ(one[0].partitions, 1);
  ASSERT_EQ(one.size(), dflt.size());
  for (size_t i = 1; i < one.size(); ++i)
    EXPECT_EQ(one[i].partitions, dflt[i].partitions) << one[i].name;
  // A Kafka connector's target belongs to another system: its count is not the engine's.
  std::set<std::string> targets;
  for (const auto& sys : reg->systems())
    if (sys.connector.type == "kafka") targets.insert("p-" + sys.connector.path);
  EXPECT_EQ(targets.count("p-national.kjernejournal"), 1U);
  for (const auto& t : dflt) EXPECT_EQ(t.counts_are_ours, targets.count(t.name) == 0) << t.name;
}

}  // namespace
}  // namespace budstikke
