#pragma once
// Route expressions: a small, safe language over a canonical event, compiled once when a
// route loads and evaluated per message without re-parsing.
//
//   receiver.her_id in system("st-olav").her_ids and type == "discharge_summary"
//   not exists(body.patient.ids) or starts_with(lower(sender.name), "st. olav")
//   date(occurred_at) >= "2026-01-01" and len(attachments) > 0
//
// Values are JSON values. Paths read the event's JSON view (see event_view()); a member of a
// list maps over it (body.diagnoses.code is the list of codes); a missing member is null.
// Operators: == != < <= > >= in, not in, and or not, + (numbers add, strings join), -.
// Functions: lower upper trim len starts_with ends_with contains matches exists coalesce
// string number date now today days_between system owner.
// Truthiness: null, false, 0, "", [] and {} are false.
//
// A compile error names the offset (0-based) in the text and what was expected; callers
// turn it into file:line:col. Evaluation never fails on an event's values: type mismatches
// yield null / false. One exception: matches() on a text its regular expression cannot be
// decided for within bounds (catastrophic backtracking, e.g. "(a*)*b") throws EvalError;
// Route::process turns it into a failure of that event (route.failed), never a hang or a
// crash. matches() uses Boost.Regex (ECMAScript syntax), which keeps its backtracking
// state on the heap and bounds it: std::regex recurses once per character (a text of
// ~10,000 characters overflowed an 8 MB stack) and may backtrack for ever.

#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace budstikke {
struct Event;
}

namespace budstikke::registry {
class Registry;
}

namespace budstikke::route {

struct ExprError {
  size_t offset = 0;
  std::string message;
};

// An expression that cannot be evaluated on an event (see above).
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CompileOptions {
  const registry::Registry* registry = nullptr;  // for system("id") checks; may be null
  std::set<std::string> extra_roots;             // e.g. "system" in a `to: query`
};

struct EvalContext {
  const nlohmann::json* event = nullptr;  // event_view()
  const registry::Registry* registry = nullptr;
  const nlohmann::json* system = nullptr;  // `system` in a to: query
};

struct Node;

// What an expression's value can depend on.
struct ExprReads {
  std::set<std::string> roots;  // the root names its paths start with (`system` included)
  bool clock = false;           // now(), today()
};

class Expr {
 public:
  static std::variant<Expr, ExprError> compile(std::string_view text, const CompileOptions& o);
  nlohmann::json eval(const EvalContext& c) const;
  bool test(const EvalContext& c) const;  // eval() then truthiness
  // Whether the value can depend on the event or the clock (now(), today()). When not, it
  // depends on `system` and the registry only: a `to: query` computes it once per registry.
  bool reads_event() const;
  ExprReads reads() const;
  // The operands of a top-level `a and b and ...`, each an expression of its own (the
  // expression itself when it is no conjunction). All truthy <=> test() is true.
  std::vector<Expr> conjuncts() const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
};

bool truthy(const nlohmann::json& v);

// The JSON routes see: the canonical event's JSON plus shortcuts:
//   sender/receiver .her_id (department's, else organisation's), .org_number, .name, .system
//   patient (= body.patient), format (= source.format), message_id (= source.message_id)
nlohmann::json event_view(const Event& e);
// The same from the event's JSON (as read from Kafka), without a round trip through Event.
nlohmann::json event_view_from_json(nlohmann::json event_json);

// The root names a path may start with.
const std::set<std::string>& event_roots();

}  // namespace budstikke::route
