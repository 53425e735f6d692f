#pragma once
// Routes (routes/*.yaml): which canonical events go where, changed how, rendered as what.
//
//   name: epikrise-to-gp
//   from: [discharge_summary]            # canonical types, or topic names (with a '.')
//   filter: 'format == "kith" and exists(receiver.her_id)'
//   map:                                 # applied in order to the event
//     - set: body.routing_note
//       value: '"copy for the GP"'
//     - rename: body.old
//       to: body.new
//     - remove: body.internal
//   render: [kith, json]                 # per destination, the first format it accepts
//   to:
//     - receiver                         # the system answering for the receiver's HER-id
//     - query: 'system.kind == "municipality" and "plo" in system.tags'
//     - nordvik-dips                     # a system id
//   receipts: auto                       # auto: AppRec to the sender when it takes them
//
// A route is compiled once when it loads (expressions, paths, system ids, render formats);
// every problem is reported as file:line:col. Route::process() is pure: event in, the
// deliveries (rendered bytes per destination) and failures out. The route stage, dry-run and
// route tests all use it.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/spec.hpp"
#include "engine/event/event.hpp"
#include "engine/registry/registry.hpp"
#include "engine/route/expr.hpp"
#include "engine/runtime/claim_check.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::route {

struct RenderChoice {
  std::string kind;    // original | kith | hl7v2 | json
  std::string format;  // as written: kith, kith/epikrise/1.2, hl7v2/2.5, json, original
};

// A `to: query`'s conjuncts that read only `system` and the registry hold for the same
// systems for every event: they are evaluated once per registry, and per event only the
// rest, for those systems. (The ADT fan-out's query reads no event at all: 194 evaluations
// per event became none.)
struct QueryPlan {
  std::vector<Expr> per_system;  // conjuncts that do not read the event
  std::vector<Expr> per_event;   // conjuncts that do
  std::mutex mu;
  uint64_t registry_serial = 0;  // of the registry `candidates` was computed for
  std::shared_ptr<const std::vector<size_t>> candidates;  // indexes into Registry::systems()
  // The indexes of the systems the per-system conjuncts hold for, in registry order (shared,
  // not copied per event; a new registry gets a new list).
  std::shared_ptr<const std::vector<size_t>> candidates_in(const registry::Registry& reg);
};

struct Destination {
  enum class Kind { kSystem, kReceiver, kSender, kQuery };
  Kind kind = Kind::kSystem;
  std::string system_id;
  std::shared_ptr<QueryPlan> plan;  // kQuery: the compiled query, planned
};

struct MapStep {
  enum class Kind { kSet, kRename, kRemove };
  Kind kind = Kind::kSet;
  std::vector<std::string> target;  // path segments
  std::vector<std::string> from;    // rename: source path
  std::optional<Expr> value;
  std::string where;  // file:line:col of the step, for runtime errors
};

struct RouteEnv {
  const registry::Registry* registry = nullptr;
  const runtime::CodecRegistry* codecs = nullptr;
  const runtime::ClaimCheckStore* claims = nullptr;  // may be null
};

// One rendered delivery for one system.
struct RoutedDelivery {
  std::string system;
  std::string format;        // what was rendered, e.g. kith/epikrise/1.2
  std::string content_type;  // application/xml, application/hl7-v2, application/json
  std::string payload;
  std::string job_id;           // deterministic: event id + route + system
  std::string idempotency_key;  // the source message id
  // This delivery goes to the message's addressee: its outcome answers the sender with a
  // receipt (copies to other systems never do: one AppRec per message).
  bool answers_sender = false;
};

struct RouteFailure {
  std::string system;  // empty when no system could be found
  std::string reason;
  std::string code;  // AppRec code for the sender when one applies (E21)
};

struct RouteResult {
  bool matched = false;  // the filter let the event through
  Event event;           // after map
  std::vector<RoutedDelivery> deliveries;
  std::vector<RouteFailure> failures;
  std::vector<std::string> skipped;  // disabled systems
  // Set when the sender should get a receipt after delivery: the codec and its context.
  std::string receipt_codec;
  std::optional<nlohmann::json> receipt_context;
};

class Route {
 public:
  const std::string& name() const { return name_; }
  const std::string& file() const { return file_; }
  const std::vector<std::string>& topics() const { return topics_; }  // without prefix
  const std::string& description() const { return description_; }
  bool enabled() const { return enabled_; }
  const std::optional<Expr>& filter() const { return filter_; }
  // The system ids this route names explicitly (for lint and topics).
  std::vector<std::string> named_systems() const;

  // `view` is event_view(e) when the caller has it already (the route stage builds it from
  // the JSON it read); null: built here.
  RouteResult process(const Event& e, const RouteEnv& env,
                      const nlohmann::json* view = nullptr) const;
  // The same for an event the caller no longer needs: a matched event is moved into the
  // result instead of copied (its body and original).
  RouteResult process(Event&& e, const RouteEnv& env, const nlohmann::json* view = nullptr) const;

  // Whether the event's type and source format alone (the bs-type and bs-source-format
  // headers the engine writes with every canonical event) show that process() would not
  // match it, so the caller need not parse it: a type the route does not read, or a part of
  // the filter (an operand of its top-level `and`) that reads only `type` and `format` and is
  // false. A missing header (nullopt) decides nothing.
  bool passes_over(std::optional<std::string_view> type, std::optional<std::string_view> format,
                   const RouteEnv& env) const;
  // Whether the filter has such a part (else passes_over() looks at the type alone, which
  // the route's own topics make moot).
  bool decides_on_headers() const { return !header_tests_.empty(); }

 private:
  friend class RouteLoader;
  // `movable`: `in` itself when it may be moved from, else null.
  RouteResult run(const Event& in, Event* movable, const RouteEnv& env,
                  const nlohmann::json* given_view) const;
  // run() without its guard: fills `out` as far as it gets.
  void run_steps(const Event& in, Event* movable, const RouteEnv& env,
                 const nlohmann::json* given_view, RouteResult& out) const;
  // Whether process() looks at an event of this type (its topics, when all are canonical).
  bool reads_type(EventType t) const;
  std::string name_, file_, description_;
  bool enabled_ = true;
  std::vector<std::string> topics_;
  std::optional<Expr> filter_;
  // The filter's conjuncts that read only `type` and/or `format` (see passes_over()).
  struct HeaderTest {
    Expr expr;
    bool needs_type = false;
    bool needs_format = false;
  };
  std::vector<HeaderTest> header_tests_;
  std::vector<MapStep> map_;
  std::vector<RenderChoice> render_;
  std::vector<Destination> to_;
  bool receipts_ = true;
};

// Loads every routes/*.yaml (not *.test.yaml) against the registry and codecs.
struct RouteSet {
  std::vector<std::shared_ptr<const Route>> routes;
  const Route* find(const std::string& name) const;
};

RouteSet load_routes(const std::string& dir, const registry::Registry& reg,
                     const runtime::CodecRegistry& codecs, config::Diagnostics& diags);
// One file (or YAML text with `file` naming it) -> a route; problems go to diags.
std::shared_ptr<const Route> load_route_file(const std::string& file, const registry::Registry& reg,
                                             const runtime::CodecRegistry& codecs,
                                             config::Diagnostics& diags);
std::shared_ptr<const Route> parse_route(const std::string& text, const std::string& file,
                                         const registry::Registry& reg,
                                         const runtime::CodecRegistry& codecs,
                                         config::Diagnostics& diags);

const config::Spec& route_spec();

// The files a route set was loaded from (for reload checks).
std::vector<std::string> route_files(const std::string& dir);

}  // namespace budstikke::route
