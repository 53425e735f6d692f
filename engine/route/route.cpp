#include "engine/route/route.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "engine/core/crypto.hpp"
#include "engine/core/redact.hpp"
#include "engine/runtime/ingest.hpp"

namespace budstikke::route {

std::shared_ptr<const std::vector<size_t>> QueryPlan::candidates_in(const registry::Registry& reg) {
  const std::lock_guard lock(mu);
  if (!candidates || registry_serial != reg.serial()) {
    auto found = std::make_shared<std::vector<size_t>>();
    const auto& systems = reg.systems();
    for (size_t i = 0; i < systems.size(); ++i) {
      const EvalContext c{nullptr, &reg, &reg.json_of(systems[i].id)};
      if (std::all_of(per_system.begin(), per_system.end(),
                      [&](const Expr& x) { return x.test(c); }))
        found->push_back(i);
    }
    candidates = std::move(found);
    registry_serial = reg.serial();
  }
  return candidates;
}

using config::Diagnostics;
using config::Field;
using config::Kind;
using config::make_field;
using config::Spec;
using json = nlohmann::json;

const config::Spec& route_spec() {
  static const Spec kSpec = [] {
    Spec r;
    r.name = "route";
    r.description = "One route: from, filter, map, render, to, receipts.";
    Field from = make_field("from", Kind::kStringList,
                            "Canonical event types (referral, discharge_summary, lab_requisition, "
                            "lab_result, dialog, admission, discharge, transfer, patient_update, "
                            "merge, document, apprec, plo, other) or topic names (with a '.').",
                            std::nullopt, true);
    Field map = make_field("map", Kind::kAny,
                           "Steps applied in order: {set: path, value: expr}, "
                           "{rename: path, to: path}, {remove: path}.");
    Field render = make_field("render", Kind::kAny,
                              "A format or a list in order of preference: original, kith, "
                              "kith/<type>/<version>, hl7v2/<version>, json. Each destination "
                              "gets the first it accepts.",
                              "original");
    Field to = make_field("to", Kind::kAny,
                          "Destinations: system ids, `receiver`, `sender`, or {query: expr} "
                          "over `system` (and the event).",
                          std::nullopt, true);
    Field receipts = make_field("receipts", Kind::kString,
                                "auto: the sender gets an AppRec when the receiver confirms "
                                "(positive) or delivery fails for good (negative), if its "
                                "registry entry takes receipts; none: never.",
                                "auto");
    receipts.allowed = {"auto", "none"};
    r.fields = {
        make_field("name", Kind::kString, "Unique name (names the consumer group).", std::nullopt,
                   true),
        make_field("description", Kind::kString, "What the route is for."),
        make_field("enabled", Kind::kBool, "A disabled route consumes nothing.", "true"),
        from,
        make_field("filter", Kind::kString, "An expression; the event is routed when true."),
        map,
        render,
        to,
        receipts};
    return r;
  }();
  return kSpec;
}

namespace {

// Positions inside a YAML scalar: line/column of the character at `offset` of its value.
struct SourceText {
  std::vector<std::string> lines;
  explicit SourceText(const std::string& text) {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) lines.push_back(l);
  }
  YAML::Mark at(const YAML::Node& n, size_t offset) const {
    YAML::Mark m = n.Mark();
    if (m.line < 0 || static_cast<size_t>(m.line) >= lines.size()) return m;
    const std::string& l = lines[static_cast<size_t>(m.line)];
    const size_t col = static_cast<size_t>(m.column);
    const char first = col < l.size() ? l[col] : '\0';
    if (first == '"' || first == '\'') {
      m.column += static_cast<int>(offset) + 1;
    } else if (first == '|' || first == '>') {
      // Block scalar: the text starts on the next line, at its indentation.
      size_t line = static_cast<size_t>(m.line) + 1;
      size_t left = offset;
      while (line < lines.size()) {
        const std::string& b = lines[line];
        const size_t indent = b.find_first_not_of(' ');
        const size_t len = indent == std::string::npos ? 0 : b.size() - indent;
        if (left <= len) {
          m.line = static_cast<int>(line);
          m.column = static_cast<int>((indent == std::string::npos ? 0 : indent) + left);
          return m;
        }
        left -= len + 1;
        ++line;
      }
    } else {
      m.column += static_cast<int>(offset);
    }
    return m;
  }
};

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : p) {
    if (ch == '.') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  out.push_back(cur);
  return out;
}

bool valid_target(const std::vector<std::string>& path, std::string& why) {
  static const std::regex kSeg("[A-Za-z_][A-Za-z0-9_]*");
  for (const auto& s : path)
    if (!std::regex_match(s, kSeg)) {
      why = "'" + s + "' is not a field name";
      return false;
    }
  static const std::set<std::string> kWritable = {"body", "sender", "receiver", "conversation",
                                                  "occurred_at"};
  if (!kWritable.count(path[0])) {
    why = "only body, sender, receiver, conversation and occurred_at can be changed, not '" +
          path[0] + "'";
    return false;
  }
  if ((path[0] == "body" || path[0] == "sender" || path[0] == "receiver" ||
       path[0] == "conversation") &&
      path.size() < 2) {
    why = "name a field inside " + path[0] + " (e.g. " + path[0] + ".x)";
    return false;
  }
  return true;
}

std::string where(const std::string& file, const YAML::Mark& m) {
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

}  // namespace

class RouteLoader {
 public:
  RouteLoader(const std::string& file, const std::string& text, const registry::Registry& reg,
              const runtime::CodecRegistry& codecs, Diagnostics& d)
      : file_(file), src_(text), reg_(reg), codecs_(codecs), d_(d) {}

  std::shared_ptr<const Route> load(YAML::Node root) {
    if (!root || !root.IsMap()) {
      d_.error(file_, root ? root.Mark() : YAML::Mark(), "",
               "a route is a mapping (name, from, to, ...)");
      return nullptr;
    }
    const size_t before = count_errors();
    config::expand_environment(root, file_, "", d_);
    config::validate(root, route_spec(), file_, "", d_);
    auto r = std::make_shared<Route>();
    r->file_ = file_;
    if (root["name"] && root["name"].IsScalar()) {
      r->name_ = root["name"].Scalar();
      static const std::regex kNameRe("[a-z0-9][a-z0-9_-]{0,99}");
      if (!std::regex_match(r->name_, kNameRe))
        d_.error(file_, root["name"].Mark(), "name",
                 "route name '" + r->name_ + "' must be lower case letters, digits, '-' or '_'");
    }
    if (root["description"] && root["description"].IsScalar())
      r->description_ = root["description"].Scalar();
    if (root["enabled"] && root["enabled"].IsScalar())
      r->enabled_ = root["enabled"].Scalar() != "false";
    if (root["receipts"] && root["receipts"].IsScalar())
      r->receipts_ = root["receipts"].Scalar() != "none";
    load_from(root["from"], *r);
    if (root["filter"] && root["filter"].IsScalar())
      r->filter_ = compile(root["filter"], "filter", {});
    if (r->filter_)
      for (auto& c : r->filter_->conjuncts()) {
        const ExprReads reads = c.reads();
        const bool type = reads.roots.count("type") > 0;
        const bool format = reads.roots.count("format") > 0;
        if (!reads.clock && (type || format) &&
            reads.roots.size() == static_cast<size_t>(type) + static_cast<size_t>(format))
          r->header_tests_.push_back({std::move(c), type, format});
      }
    load_map(root["map"], *r);
    load_render(root["render"], *r);
    load_to(root["to"], *r);
    return count_errors() == before ? r : nullptr;
  }

 private:
  size_t count_errors() const {
    size_t n = 0;
    for (const auto& i : d_.items())
      if (i.severity == config::Severity::kError) ++n;
    return n;
  }

  std::optional<Expr> compile(const YAML::Node& n, const std::string& path,
                              std::set<std::string> extra) {
    CompileOptions o;
    o.registry = &reg_;
    o.extra_roots = std::move(extra);
    auto c = Expr::compile(n.Scalar(), o);
    if (auto* e = std::get_if<ExprError>(&c)) {
      d_.error(file_, src_.at(n, e->offset), path, e->message);
      return std::nullopt;
    }
    return std::get<Expr>(std::move(c));
  }

  void load_from(const YAML::Node& n, Route& r) {
    if (!n || !n.IsSequence()) return;
    if (n.size() == 0) d_.error(file_, n.Mark(), "from", "name at least one type or topic");
    for (size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar()) continue;
      const std::string v = n[i].Scalar();
      if (v.find('.') != std::string::npos) {
        r.topics_.push_back(v);
      } else if (auto t = event_type_from_string(v)) {
        r.topics_.push_back(canonical_topic(*t));
      } else {
        std::string known;
        for (int k = 0; k <= static_cast<int>(EventType::kOther); ++k)
          known += (known.empty() ? "" : ", ") + std::string(to_string(static_cast<EventType>(k)));
        d_.error(
            file_, n[i].Mark(), "from[" + std::to_string(i) + "]",
            "unknown event type '" + v + "'; known: " + known + " (or a topic name with a '.')");
      }
    }
  }

  void load_map(const YAML::Node& n, Route& r) {
    if (!n) return;
    if (!n.IsSequence()) {
      d_.error(file_, n.Mark(), "map", "expected a list of steps (set, rename, remove)");
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node s = n[i];
      const std::string p = "map[" + std::to_string(i) + "]";
      if (!s.IsMap()) {
        d_.error(file_, s.Mark(), p,
                 "expected a step: {set: path, value: expr}, "
                 "{rename: path, to: path} or {remove: path}");
        continue;
      }
      MapStep step;
      step.where = where(file_, s.Mark());
      std::set<std::string> allowed;
      std::string target_key;
      if (s["set"]) {
        step.kind = MapStep::Kind::kSet;
        target_key = "set";
        allowed = {"set", "value"};
      } else if (s["rename"]) {
        step.kind = MapStep::Kind::kRename;
        target_key = "rename";
        allowed = {"rename", "to"};
      } else if (s["remove"]) {
        step.kind = MapStep::Kind::kRemove;
        target_key = "remove";
        allowed = {"remove"};
      } else {
        d_.error(file_, s.Mark(), p, "a step needs one of set, rename or remove");
        continue;
      }
      for (const auto& kv : s)
        if (!allowed.count(kv.first.Scalar()))
          d_.error(file_, kv.first.Mark(), p + "." + kv.first.Scalar(),
                   "unknown key in a " + target_key + " step");
      auto path_of = [&](const char* key, std::vector<std::string>& out) {
        const YAML::Node t = s[key];
        if (!t || !t.IsScalar()) {
          d_.error(file_, s.Mark(), p + "." + key, "needs a path such as body.note");
          return false;
        }
        out = split_path(t.Scalar());
        std::string why;
        if (!valid_target(out, why)) {
          d_.error(file_, t.Mark(), p + "." + key, why);
          return false;
        }
        return true;
      };
      if (!path_of(target_key.c_str(), step.target)) continue;
      if (step.kind == MapStep::Kind::kSet) {
        if (!s["value"] || !s["value"].IsScalar()) {
          d_.error(file_, s.Mark(), p + ".value", "a set step needs value: an expression");
          continue;
        }
        step.value = compile(s["value"], p + ".value", {});
        if (!step.value) continue;
      } else if (step.kind == MapStep::Kind::kRename) {
        step.from = step.target;
        if (!path_of("to", step.target)) continue;
      }
      r.map_.push_back(std::move(step));
    }
  }

  void load_render(const YAML::Node& n, Route& r) {
    std::vector<std::pair<std::string, YAML::Node>> items;
    if (!n) {
      r.render_.push_back({"original", "original"});
      return;
    }
    if (n.IsScalar()) {
      items.emplace_back(n.Scalar(), n);
    } else if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i)
        if (n[i].IsScalar())
          items.emplace_back(n[i].Scalar(), n[i]);
        else
          d_.error(file_, n[i].Mark(), "render", "expected a format");
    } else {
      d_.error(file_, n.Mark(), "render", "expected a format or a list of formats");
      return;
    }
    static const std::regex kIthRe("kith(/[a-z]+/[0-9]+(\\.[0-9]+)*)?");
    static const std::regex kHl7Re("hl7v2/2\\.[0-9](\\.[0-9])?");
    for (const auto& [f, node] : items) {
      RenderChoice c;
      c.format = f;
      if (f == "original" || f == "json") {
        c.kind = f;
      } else if (std::regex_match(f, kIthRe)) {
        c.kind = "kith";
      } else if (std::regex_match(f, kHl7Re)) {
        c.kind = "hl7v2";
      } else {
        d_.error(file_, node.Mark(), "render",
                 "unknown format '" + f +
                     "'; use original, kith, kith/<type>/<version>, hl7v2/<version> or json");
        continue;
      }
      if ((c.kind == "kith" || c.kind == "hl7v2") && !codecs_.find(c.kind))
        d_.error(file_, node.Mark(), "render", "no codec '" + c.kind + "' is registered");
      r.render_.push_back(c);
    }
  }

  void load_to(const YAML::Node& n, Route& r) {
    if (!n) return;
    std::vector<YAML::Node> items;
    if (n.IsScalar()) {
      items.push_back(n);
    } else if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) items.push_back(n[i]);
    } else {
      d_.error(file_, n.Mark(), "to", "expected a list of destinations");
      return;
    }
    if (items.empty()) d_.error(file_, n.Mark(), "to", "name at least one destination");
    for (size_t i = 0; i < items.size(); ++i) {
      const YAML::Node& d = items[i];
      const std::string p = "to[" + std::to_string(i) + "]";
      Destination dest;
      if (d.IsScalar()) {
        const std::string v = d.Scalar();
        if (v == "receiver") {
          dest.kind = Destination::Kind::kReceiver;
        } else if (v == "sender") {
          dest.kind = Destination::Kind::kSender;
        } else if (reg_.find(v)) {
          dest.system_id = v;
        } else {
          std::string hint;
          size_t best = 1000;
          for (const auto& s : reg_.systems()) {
            // Cheap closeness: common prefix length.
            size_t k = 0;
            while (k < v.size() && k < s.id.size() && v[k] == s.id[k]) ++k;
            const size_t dist = std::max(v.size(), s.id.size()) - k;
            if (dist < best && k >= 3) {
              best = dist;
              hint = s.id;
            }
          }
          d_.error(file_, d.Mark(), p,
                   "unknown system '" + v + "' (not in " + reg_.file() + ")" +
                       (hint.empty() ? "" : "; did you mean '" + hint + "'?") +
                       " Use a system id, receiver, sender or {query: ...}");
          continue;
        }
      } else if (d.IsMap() && d["query"] && d["query"].IsScalar()) {
        for (const auto& kv : d)
          if (kv.first.Scalar() != "query")
            d_.error(file_, kv.first.Mark(), p + "." + kv.first.Scalar(), "unknown key");
        dest.kind = Destination::Kind::kQuery;
        const auto query = compile(d["query"], p + ".query", {"system"});
        if (!query) continue;
        dest.plan = std::make_shared<QueryPlan>();
        for (auto& c : query->conjuncts())
          (c.reads_event() ? dest.plan->per_event : dest.plan->per_system).push_back(std::move(c));
      } else {
        d_.error(file_, d.Mark(), p, "expected a system id, receiver, sender or {query: expr}");
        continue;
      }
      r.to_.push_back(std::move(dest));
    }
  }

  std::string file_;
  SourceText src_;
  const registry::Registry& reg_;
  const runtime::CodecRegistry& codecs_;
  Diagnostics& d_;
};

std::vector<std::string> Route::named_systems() const {
  std::vector<std::string> out;
  for (const auto& d : to_)
    if (d.kind == Destination::Kind::kSystem) out.push_back(d.system_id);
  return out;
}

namespace {

json* walk(json& root, const std::vector<std::string>& path, bool create) {
  json* cur = &root;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!cur->is_object()) {
      if (!create) return nullptr;
      *cur = json::object();
    }
    auto it = cur->find(path[i]);
    if (it == cur->end()) {
      if (!create) return nullptr;
      it = cur->emplace(path[i], json::object()).first;
    }
    cur = &*it;
  }
  if (!cur->is_object()) {
    if (!create) return nullptr;
    *cur = json::object();
  }
  return cur;
}

const registry::System* owner(const registry::Registry& reg, const Party& p) {
  for (const std::string* her : {&p.department.her_id, &p.organisation.her_id, &p.person.her_id})
    if (!her->empty())
      if (const auto* s = reg.owner_of_her(*her)) return s;
  if (!p.organisation.org_number.empty())
    if (const auto* s = reg.owner_of_org(p.organisation.org_number)) return s;
  if (!p.system.empty())
    if (const auto* s = reg.find(p.system)) return s;
  return nullptr;
}

std::string describe(const Party& p) {
  std::string s;
  if (!p.department.her_id.empty()) s += "HER-id " + p.department.her_id;
  if (!p.organisation.her_id.empty()) s += (s.empty() ? "HER-id " : ", ") + p.organisation.her_id;
  if (!p.organisation.org_number.empty())
    s += (s.empty() ? "" : ", ") + std::string("org.nr ") + p.organisation.org_number;
  if (!p.system.empty()) s += (s.empty() ? "" : ", ") + std::string("system ") + p.system;
  return s.empty() ? "no identifier" : s;
}

const char* content_type_of(const std::string& kind) {
  if (kind == "kith") return "application/xml";
  if (kind == "hl7v2") return "application/hl7-v2";
  return "application/json";
}

Party party_of(const registry::System& s) {
  Party p;
  p.organisation.name = s.name;
  if (!s.her_ids.empty()) p.organisation.her_id = s.her_ids.front();
  if (!s.org_numbers.empty()) p.organisation.org_number = s.org_numbers.front();
  p.system = s.id;
  return p;
}

}  // namespace

RouteResult Route::process(const Event& e, const RouteEnv& env, const nlohmann::json* view) const {
  return run(e, nullptr, env, view);
}

RouteResult Route::process(Event&& e, const RouteEnv& env, const nlohmann::json* view) const {
  return run(e, &e, env, view);
}

bool Route::passes_over(std::optional<std::string_view> type,
                        std::optional<std::string_view> format, const RouteEnv& env) const {
  if (type) {
    const auto t = event_type_from_string(*type);
    if (t && !reads_type(*t)) return true;
  }
  json view;
  for (const auto& h : header_tests_) {
    if ((h.needs_type && !type) || (h.needs_format && !format)) continue;
    if (view.is_null()) {
      view = json::object();
      if (type) view["type"] = *type;
      if (format) view["format"] = *format;
    }
    const EvalContext ctx{&view, env.registry, nullptr};
    try {
      if (!h.expr.test(ctx)) return true;
    } catch (const EvalError&) {
      // Undecided on these headers: decides nothing here; process() fails the event, with
      // the reason, if the same happens there.
    }
  }
  return false;
}

bool Route::reads_type(EventType t) const {
  const std::string own_topic = canonical_topic(t);
  if (std::find(topics_.begin(), topics_.end(), own_topic) != topics_.end()) return true;
  // A route reading other topics too may see any type there.
  return !std::all_of(topics_.begin(), topics_.end(),
                      [](const auto& topic) { return topic.rfind("canonical.", 0) == 0; });
}

void Route::run_steps(const Event& in, Event* movable, const RouteEnv& env,
                      const nlohmann::json* given_view, RouteResult& out) const {
  // Only the types the route reads (its topics, when they are canonical.<type> topics).
  if (!reads_type(in.type)) return;
  const registry::Registry& reg = *env.registry;
  json own_view;
  if (!given_view) own_view = event_view(in);
  const json* view = given_view ? given_view : &own_view;
  EvalContext ctx{view, &reg, nullptr};
  if (filter_ && !filter_->test(ctx)) return;
  out.matched = true;
  if (movable)
    out.event = std::move(*movable);  // `in` is `*movable`: not read after this
  else
    out.event = in;
  if (!map_.empty()) {
    json ev = to_json(out.event);
    for (const auto& step : map_) {
      json value;
      if (step.kind == MapStep::Kind::kSet) {
        value = step.value->eval(ctx);
      } else if (step.kind == MapStep::Kind::kRename) {
        json* parent = walk(ev, step.from, false);
        if (!parent) continue;
        auto it = parent->find(step.from.back());
        if (it == parent->end()) continue;
        value = std::move(*it);
        parent->erase(it);
      }
      if (step.kind == MapStep::Kind::kRemove) {
        if (json* parent = walk(ev, step.target, false)) parent->erase(step.target.back());
      } else {
        json* parent = walk(ev, step.target, true);
        (*parent)[step.target.back()] = std::move(value);
      }
    }
    auto mapped = event_from_json(ev);
    if (!mapped) {
      out.failures.push_back({"",
                              "route " + name_ +
                                  ": the mapped event is not a valid "
                                  "canonical event: " +
                                  mapped.error().message,
                              ""});
      return;
    }
    out.event = std::move(*mapped);
    own_view = event_view(out.event);
    view = &own_view;
    ctx.event = view;
  }
  const Event& e = out.event;

  // Destinations, in order, each once.
  std::vector<const registry::System*> dests;
  std::set<std::string> seen;
  auto add = [&](const registry::System* s) {
    if (s && seen.insert(s->id).second) dests.push_back(s);
  };
  for (const auto& d : to_) {
    switch (d.kind) {
      case Destination::Kind::kSystem:
        add(reg.find(d.system_id));
        break;
      case Destination::Kind::kReceiver:
      case Destination::Kind::kSender: {
        const bool rcv = d.kind == Destination::Kind::kReceiver;
        const Party& p = rcv ? e.receiver : e.sender;
        if (const auto* s = owner(reg, p)) {
          add(s);
        } else {
          out.failures.push_back({"",
                                  std::string("no system in the registry answers for the ") +
                                      (rcv ? "receiver" : "sender") + " (" + describe(p) + ")",
                                  rcv ? "E21" : ""});
        }
        break;
      }
      case Destination::Kind::kQuery: {
        const auto& systems = reg.systems();
        for (const size_t i : *d.plan->candidates_in(reg)) {
          const json& sj = reg.json_of(systems[i].id);
          const EvalContext qc{view, &reg, &sj};
          if (std::all_of(d.plan->per_event.begin(), d.plan->per_event.end(),
                          [&](const Expr& x) { return x.test(qc); }))
            add(&systems[i]);
        }
        break;
      }
    }
  }

  const std::string source_format = e.source.format;
  const runtime::Codec* own = env.codecs ? env.codecs->find(source_format) : nullptr;
  const std::string own_format = own ? own->format_of(e) : source_format + "/" + e.source.version;
  const registry::System* addressee = owner(reg, e.receiver);

  std::string original;
  bool original_loaded = false;
  auto load_original = [&](std::string& why) -> bool {
    if (original_loaded) return true;
    if (!e.original) {
      why = "the event carries no original message";
      return false;
    }
    if (e.original->data) {
      original = *e.original->data;
    } else if (env.claims && !e.original->claim_check.empty()) {
      auto got = env.claims->get(e.original->claim_check);
      if (!got) {
        why = "original not readable from the claim-check store: " + got.error().message;
        return false;
      }
      original = std::move(*got);
    } else {
      why = "the original is in a claim-check store this engine cannot read";
      return false;
    }
    original_loaded = true;
    return true;
  };

  // What a codec parsed of the original for one destination, for the next ones.
  std::unique_ptr<runtime::RenderMemo> memo;
  for (const auto* s : dests) {
    if (!s->enabled) {
      out.skipped.push_back(s->id);
      continue;
    }
    // The first render choice this system accepts.
    const RenderChoice* choice = nullptr;
    std::string format;
    for (const auto& c : render_) {
      std::string f;
      if (c.kind == "original") {
        f = own_format;
      } else if (c.kind == "json") {
        f = "json";
      } else if (c.kind == "kith") {
        if (source_format != "kith") continue;
        f = c.format == "kith" ? own_format : c.format;
      } else {
        f = c.format;
      }
      if (s->accepts_format(f)) {
        choice = &c;
        format = f;
        break;
      }
    }
    if (!choice) {
      std::string offered, accepts;
      for (const auto& c : render_) offered += (offered.empty() ? "" : ", ") + c.format;
      for (const auto& a : s->accepts) accepts += (accepts.empty() ? "" : ", ") + a;
      out.failures.push_back({s->id,
                              "system '" + s->id + "' accepts [" + accepts + "]; route '" + name_ +
                                  "' renders [" + offered + "] and this event is " + own_format,
                              ""});
      continue;
    }
    RoutedDelivery d;
    d.system = s->id;
    d.format = format;
    d.job_id = runtime::uuid_from_seed(e.event_id + "|" + name_ + "|" + s->id);
    d.idempotency_key = e.source.message_id;
    d.answers_sender = s == addressee;
    std::string why;
    if (choice->kind == "json") {
      d.content_type = content_type_of("json");
      d.payload = to_json_string(e);
    } else if (choice->kind == "original") {
      d.content_type = content_type_of(source_format);
      if (!load_original(why)) {
        out.failures.push_back({s->id, why, ""});
        continue;
      }
      d.payload = original;
    } else {
      const runtime::Codec* codec = env.codecs ? env.codecs->find(choice->kind) : nullptr;
      if (!codec) {
        out.failures.push_back({s->id, "no codec " + choice->kind, ""});
        continue;
      }
      if (!load_original(why) && choice->kind == source_format) {
        out.failures.push_back({s->id, why, ""});
        continue;
      }
      runtime::RenderRequest rr;
      rr.format = format;
      rr.receiver = party_of(*s);
      rr.system_id = s->id;
      rr.readdress = addressee != s;
      rr.message_id = runtime::uuid_from_seed(e.event_id + "|" + s->id);
      rr.memo = &memo;
      auto rendered = codec->render(e, original, rr);
      if (!rendered) {
        out.failures.push_back(
            {s->id, "render " + format + " for '" + s->id + "' failed: " + rendered.error().message,
             ""});
        continue;
      }
      d.content_type = content_type_of(choice->kind);
      d.payload = std::move(*rendered);
    }
    out.deliveries.push_back(std::move(d));
  }

  if (receipts_ && own && e.type != EventType::kAppRec) {
    const registry::System* sender = owner(reg, e.sender);
    if (sender && sender->receipts == "apprec" && source_format == "kith") {
      if (auto ctx_json = own->receipt_context(e)) {
        out.receipt_codec = std::string(own->name());
        out.receipt_context = std::move(*ctx_json);
      }
    }
  }
}

RouteResult Route::run(const Event& in, Event* movable, const RouteEnv& env,
                       const nlohmann::json* given_view) const {
  RouteResult out;
  try {
    run_steps(in, movable, env, given_view, out);
  } catch (const std::exception& ex) {
    // An expression that could not be decided (EvalError), or anything else thrown on this
    // event: the event is not routed, and says why (route.failed, tracking), instead of
    // stopping the route at the same record after every start.
    if (!out.matched) {  // thrown by the filter: the event was not taken yet
      out.matched = true;
      out.event = in;
    }
    out.deliveries.clear();
    out.receipt_codec.clear();
    out.receipt_context.reset();
    out.failures.push_back({"", "route " + name_ + ": " + ex.what(), ""});
  }
  return out;
}

const Route* RouteSet::find(const std::string& name) const {
  for (const auto& r : routes)
    if (r->name() == name) return r.get();
  return nullptr;
}

std::shared_ptr<const Route> parse_route(const std::string& text, const std::string& file,
                                         const registry::Registry& reg,
                                         const runtime::CodecRegistry& codecs, Diagnostics& d) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    d.error(file, e.mark, "", "YAML syntax: " + e.msg);
    return nullptr;
  }
  RouteLoader l(file, text, reg, codecs, d);
  return l.load(root);
}

std::shared_ptr<const Route> load_route_file(const std::string& file, const registry::Registry& reg,
                                             const runtime::CodecRegistry& codecs, Diagnostics& d) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    d.add(config::Diagnostic{file, 0, 0, config::Severity::kError, "", "cannot open file"});
    return nullptr;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_route(ss.str(), file, reg, codecs, d);
}

std::vector<std::string> route_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const bool yaml = name.size() > 5 && (name.ends_with(".yaml") || name.ends_with(".yml"));
    if (!yaml || name.ends_with(".test.yaml") || name.ends_with(".test.yml") || name[0] == '.')
      continue;
    out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

RouteSet load_routes(const std::string& dir, const registry::Registry& reg,
                     const runtime::CodecRegistry& codecs, Diagnostics& d) {
  RouteSet set;
  if (!std::filesystem::is_directory(dir)) {
    d.add(config::Diagnostic{dir, 0, 0, config::Severity::kError, "",
                             "routes directory does not exist"});
    return set;
  }
  std::map<std::string, std::string> names;
  for (const auto& f : route_files(dir)) {
    auto r = load_route_file(f, reg, codecs, d);
    if (!r) continue;
    if (auto it = names.find(r->name()); it != names.end()) {
      d.add(config::Diagnostic{f, 0, 0, config::Severity::kError, "name",
                               "route name '" + r->name() + "' is also used by " + it->second});
      continue;
    }
    names[r->name()] = f;
    set.routes.push_back(std::move(r));
  }
  return set;
}

}  // namespace budstikke::route
