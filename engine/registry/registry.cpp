#include "engine/registry/registry.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <regex>
#include <set>

namespace budstikke::registry {
namespace {

using config::Diagnostics;
using config::Field;
using config::Kind;
using config::make_choice;
using config::make_field;
using config::make_int;
using config::make_object;
using config::make_spec;
using config::Spec;

Spec build_system_spec(bool required) {
  auto tls = make_spec(Spec{
      "connector.tls",
      "TLS for https:// and mllps:// connectors.",
      {make_field("ca_file", Kind::kString, "PEM file with the CAs to trust (default: system)."),
       make_field("cert_file", Kind::kString, "Client certificate (mutual TLS), PEM."),
       make_field("key_file", Kind::kString, "Private key of the client certificate, PEM."),
       make_field("verify", Kind::kBool, "Verify the server's certificate and name.", "true")}});
  Field headers = make_field("headers", Kind::kStringMap, "Extra HTTP request headers.");
  auto connector = make_spec(Spec{
      "connector",
      "How deliveries reach the system.",
      {make_field("url", Kind::kString,
                  "http(s)://host:port/path, mllp(s)://host:port, file:///directory (or "
                  "file:relative/to/systems.yaml), or kafka:topic.",
                  std::nullopt, required),
       make_object("tls", "TLS and mutual TLS settings.", tls),
       make_int("timeout_ms", "Time allowed for one delivery, answer included.", 30000, 100,
                3600000),
       make_int("connect_timeout_ms", "Time allowed to connect.", 5000, 100, 600000), headers,
       make_field("file_suffix", Kind::kString,
                  "file: suffix of delivered files (default by format: .xml, .hl7, .json).")}});
  auto retry = make_spec(Spec{
      "retry",
      "Retries of retriable failures, with exponential backoff and jitter.",
      {make_int("max_attempts", "Attempts in all, the first included; then the dead-letter topic.",
                5, 1, 1000),
       make_int("initial_backoff_ms", "Wait before the first retry.", 1000, 1, 86400000),
       make_int("max_backoff_ms", "Longest wait between attempts.", 300000, 1, 86400000),
       make_int("multiplier_percent", "Each wait is the previous one times this / 100.", 200, 100,
                1000),
       make_int("jitter_percent", "Random spread of each wait, in percent.", 20, 0, 100)}});
  auto breaker = make_spec(Spec{
      "circuit_breaker",
      "Stops calling a failing system for a while: after failure_threshold consecutive "
      "retriable failures, attempts fail fast as retriable (each counts as an attempt, with "
      "its backoff; a job's attempts that fail fast in a row are tracked once, as 'circuit "
      "open', and its next tracked outcome carries their count) until open_ms has passed; "
      "then one trial goes through, and closes the circuit or opens it again. Seen in "
      "budstikke_delivery_circuit_opened_total{system} and the log.",
      {make_int("failure_threshold", "Consecutive failures that open the circuit.", 5, 1, 100000),
       make_int("open_ms", "How long the circuit stays open before a trial delivery.", 30000, 1,
                86400000)}});
  Spec s;
  s.name = "system";
  s.description = "One connected system.";
  s.fields = {
      make_field("id", Kind::kString,
                 "Unique id: lower case letters, digits, '-', '_' (used in topic names).",
                 std::nullopt, required),
      make_field("name", Kind::kString, "Display name.", std::nullopt, required),
      make_choice("kind", "What it is.", "other",
                  {"hospital", "department", "gp", "municipality", "lab", "national", "other"}),
      make_field("her_ids", Kind::kStringList,
                 "HER-ids (Adresseregisteret) it answers for; `to: receiver` uses them."),
      make_field("org_numbers", Kind::kStringList, "Organisation numbers it answers for."),
      make_field("accepts", Kind::kStringList,
                 "Formats it accepts: kith/<type>/<version>, kith/<type>/*, kith/*, "
                 "hl7v2/<version>, hl7v2/*, json."),
      make_field("tags", Kind::kStringList, "Free labels routes can query (e.g. adt)."),
      make_object("connector", "How to reach it.", connector),
      make_int("concurrency", "Deliveries in flight at once.", 4, 1, 256),
      make_int("rate_limit", "Deliveries per second at most (0: no limit).", 0, 0, 1000000),
      make_object("retry", "Retry policy.", retry),
      make_object("circuit_breaker", "Circuit breaker.", breaker),
      make_choice("ordering", "per_patient: one patient's messages are delivered in order; none.",
                  "per_patient", {"per_patient", "none"}),
      make_choice("receipts", "Whether it sends and gets receipts: apprec (KITH), ack (HL7), none.",
                  "apprec", {"apprec", "ack", "none"}),
      make_field("enabled", Kind::kBool, "A disabled system gets nothing delivered.", "true")};
  return s;
}

const Spec& defaults_spec() {
  static const Spec kSpec = [] {
    Spec d = build_system_spec(false);
    d.name = "defaults";
    d.fields.erase(std::remove_if(d.fields.begin(), d.fields.end(),
                                  [](const Field& f) {
                                    return f.name == "id" || f.name == "name" ||
                                           f.name == "her_ids" || f.name == "org_numbers";
                                  }),
                   d.fields.end());
    return d;
  }();
  return kSpec;
}

std::string join_path(const std::string& a, const std::string& b) {
  return a.empty() ? b : a + "." + b;
}

// Values of one generated row: column name -> value.
using Vars = std::map<std::string, std::string>;

struct Layer {
  YAML::Node node;
  std::string path;  // dotted path of the node in the file
};

struct Ctx {
  const std::string& file;
  Diagnostics& d;
  const Vars* vars = nullptr;
  std::string row_note;  // " (row 3)" for generated systems
};

// Replaces {name} by the row's value; unknown names are errors.
bool substitute(const std::string& in, const YAML::Node& at, const std::string& path, Ctx& c,
                std::string& out) {
  out.clear();
  if (!c.vars || in.find('{') == std::string::npos) {
    out = in;
    return true;
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '{') {
      out.push_back(in[i]);
      continue;
    }
    const size_t end = in.find('}', i);
    if (end == std::string::npos) {
      c.d.error(c.file, at.Mark(), path, "unterminated '{' in '" + in + "'" + c.row_note);
      return false;
    }
    const std::string name = in.substr(i + 1, end - i - 1);
    const auto it = c.vars->find(name);
    if (it == c.vars->end()) {
      std::string known;
      for (const auto& [k, v] : *c.vars) known += (known.empty() ? "" : ", ") + k;
      c.d.error(c.file, at.Mark(), path,
                "unknown placeholder {" + name + "}; the group's columns are: " + known);
      return false;
    }
    out += it->second;
    i = end;
  }
  return true;
}

// The node for a dotted key in the first layer that has it.
std::optional<std::pair<YAML::Node, std::string>> pick(const std::vector<Layer>& layers,
                                                       const std::vector<std::string>& keys) {
  for (const auto& l : layers) {
    YAML::Node n;
    n.reset(l.node);  // never `n = ...`: that would overwrite the node n refers to
    std::string path = l.path;
    bool found = true;
    for (const auto& k : keys) {
      const YAML::Node& cn = n;
      if (!cn || !cn.IsMap() || !cn[k]) {
        found = false;
        break;
      }
      n.reset(cn[k]);
      path = join_path(path, k);
    }
    if (found) return std::make_pair(n, path);
  }
  return std::nullopt;
}

std::string default_of(const Spec& spec, const std::vector<std::string>& keys) {
  const Spec* s = &spec;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Field* f = s->find(keys[i]);
    if (!f) return {};
    if (i + 1 == keys.size()) return f->default_value.value_or("");
    if (!f->object) return {};
    s = f->object.get();
  }
  return {};
}

std::string get_str(const std::vector<Layer>& layers, const std::vector<std::string>& keys,
                    Ctx& c) {
  auto p = pick(layers, keys);
  if (!p || !p->first.IsScalar()) return default_of(system_spec(), keys);
  std::string out;
  substitute(p->first.Scalar(), p->first, p->second, c, out);
  return out;
}

int64_t get_int(const std::vector<Layer>& layers, const std::vector<std::string>& keys, Ctx& c) {
  const std::string s = get_str(layers, keys, c);
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (...) {
    return 0;  // validation reported it
  }
}

bool get_bool(const std::vector<Layer>& layers, const std::vector<std::string>& keys, Ctx& c) {
  const std::string s = get_str(layers, keys, c);
  return s == "true" || s == "yes" || s == "on";
}

std::vector<std::string> get_list(const std::vector<Layer>& layers,
                                  const std::vector<std::string>& keys, Ctx& c) {
  std::vector<std::string> out;
  auto p = pick(layers, keys);
  if (!p || !p->first.IsSequence()) return out;
  for (size_t i = 0; i < p->first.size(); ++i) {
    const YAML::Node n = p->first[i];
    if (!n.IsScalar()) continue;
    std::string v;
    if (substitute(n.Scalar(), n, p->second + "[" + std::to_string(i) + "]", c, v))
      out.push_back(v);
  }
  return out;
}

std::map<std::string, std::string> get_map(const std::vector<Layer>& layers,
                                           const std::vector<std::string>& keys, Ctx& c) {
  std::map<std::string, std::string> out;
  auto p = pick(layers, keys);
  if (!p || !p->first.IsMap()) return out;
  for (const auto& kv : p->first) {
    if (!kv.second.IsScalar()) continue;
    std::string v;
    if (substitute(kv.second.Scalar(), kv.second, join_path(p->second, kv.first.Scalar()), c, v))
      out[kv.first.Scalar()] = v;
  }
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// Parses the connector URL into its parts; false with a reason when it is not usable.
bool parse_url(const std::string& url, const std::string& base_dir, Connector& c,
               std::string& why) {
  const size_t colon = url.find(':');
  if (colon == std::string::npos) {
    why = "'" + url + "' has no scheme; use http(s)://, mllp(s)://, file:// or kafka:";
    return false;
  }
  c.type = url.substr(0, colon);
  std::string rest = url.substr(colon + 1);
  if (c.type == "kafka") {
    if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
    static const std::regex kTopic("[A-Za-z0-9._-]{1,249}");
    if (!std::regex_match(rest, kTopic)) {
      why = "kafka: needs a topic name (letters, digits, '.', '_', '-'), got '" + rest + "'";
      return false;
    }
    c.path = rest;
    return true;
  }
  if (c.type == "file") {
    if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
    if (rest.empty()) {
      why = "file: needs a directory";
      return false;
    }
    std::filesystem::path p(rest);
    if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
    c.path = p.lexically_normal().string();
    return true;
  }
  if (c.type != "http" && c.type != "https" && c.type != "mllp" && c.type != "mllps") {
    why = "unknown scheme '" + c.type + "'; use http, https, mllp, mllps, file or kafka";
    return false;
  }
  if (rest.rfind("//", 0) != 0) {
    why = "'" + url + "' must look like " + c.type + "://host:port";
    return false;
  }
  rest = rest.substr(2);
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  c.path = slash == std::string::npos ? "/" : rest.substr(slash);
  const size_t pc = authority.rfind(':');
  const bool http = c.type == "http" || c.type == "https";
  std::string port;
  if (pc == std::string::npos) {
    if (!http) {
      why = "'" + url + "' needs a port";
      return false;
    }
    c.host = authority;
    port = c.type == "http" ? "80" : "443";
  } else {
    c.host = authority.substr(0, pc);
    port = authority.substr(pc + 1);
  }
  if (c.host.empty()) {
    why = "'" + url + "' has no host";
    return false;
  }
  if (!all_digits(port) || port.size() > 5 || std::stoi(port) > 65535 || std::stoi(port) == 0) {
    why = "'" + url + "' has an invalid port '" + port + "'";
    return false;
  }
  c.port = std::stoi(port);
  if (!http && c.path != "/") {
    why = "'" + url + "': MLLP URLs have no path";
    return false;
  }
  return true;
}

bool valid_format(const std::string& f) {
  static const std::regex kFormatRe(
      "json|kith/\\*|kith/[a-z]+/(\\*|[0-9]+(\\.[0-9]+)*)|hl7v2/(\\*|2\\.[0-9](\\.[0-9])?)");
  return std::regex_match(f, kFormatRe);
}

}  // namespace

int64_t RetryPolicy::backoff_ms(int attempt) const {
  double w = static_cast<double>(initial_backoff_ms);
  for (int a = 2; a < attempt; ++a) {
    w = w * multiplier_percent / 100.0;
    if (w >= static_cast<double>(max_backoff_ms)) break;
  }
  return std::min<int64_t>(static_cast<int64_t>(w), max_backoff_ms);
}

int64_t RetryPolicy::wait_ms(int attempt, std::mt19937_64& rng) const {
  int64_t wait = backoff_ms(attempt);
  if (jitter_percent > 0) {
    const int64_t spread = wait * jitter_percent / 100;
    std::uniform_int_distribution<int64_t> d(-spread, spread);
    wait += d(rng);
  }
  return std::max<int64_t>(1, wait);
}

bool System::accepts_format(const std::string& format) const {
  for (const auto& a : accepts) {
    if (a == format) return true;
    if (a.size() >= 2 && a.compare(a.size() - 2, 2, "/*") == 0 &&
        format.compare(0, a.size() - 1, a, 0, a.size() - 1) == 0)
      return true;
  }
  return false;
}

nlohmann::json System::to_json() const {
  return {{"id", id},
          {"name", name},
          {"kind", kind},
          {"her_ids", her_ids},
          {"org_numbers", org_numbers},
          {"accepts", accepts},
          {"tags", tags},
          {"connector", connector.type},
          {"receipts", receipts},
          {"enabled", enabled}};
}

const Spec& system_spec() {
  static const Spec kSpec = build_system_spec(true);
  return kSpec;
}

const Spec& systems_file_spec() {
  static const Spec kSpec = [] {
    auto sys = std::make_shared<const Spec>(system_spec());
    auto defs = std::make_shared<const Spec>(defaults_spec());
    Field rows = make_field("rows", Kind::kAny,
                            "The table: one row per line, a list of values in column order.");
    auto group = make_spec(
        Spec{"group",
             "Systems generated from a template and a table: every {column} in the template's "
             "strings is replaced by the row's value; {i} counts 1..repeat.",
             {make_field("description", Kind::kString, "What the group is."),
              make_field("columns", Kind::kStringList, "Names of the table's columns.",
                         std::nullopt, true),
              make_field("repeat", Kind::kInt, "Systems per row ({i} = 1..repeat).", "1"), rows,
              make_object("template", "A system entry with {column} placeholders.", sys)}});
    Spec f;
    f.name = "systems.yaml";
    f.description = "The registry of connected systems.";
    f.fields = {make_object("defaults",
                            "Defaults for every system (any system key but id, name, "
                            "her_ids and org_numbers).",
                            defs),
                make_object("systems", "Explicit system entries.", sys, Kind::kObjectList),
                make_object("groups", "Generated system entries.", group, Kind::kObjectList)};
    return f;
  }();
  return kSpec;
}

struct RegistryBuilder {
  Registry& r;
  Ctx& c;
  std::string base_dir;
  std::map<std::string, std::string> id_at;  // id -> where first declared

  static void set_file(Registry& reg, const std::string& f) { reg.file_ = f; }

  void add(const std::vector<Layer>& layers, const YAML::Node& at, const std::string& origin) {
    System s;
    s.file = c.file;
    s.line = at.Mark().line + 1;
    s.column = at.Mark().column + 1;
    s.origin = origin;
    s.id = get_str(layers, {"id"}, c);
    s.name = get_str(layers, {"name"}, c);
    s.kind = get_str(layers, {"kind"}, c);
    s.her_ids = get_list(layers, {"her_ids"}, c);
    s.org_numbers = get_list(layers, {"org_numbers"}, c);
    s.accepts = get_list(layers, {"accepts"}, c);
    s.tags = get_list(layers, {"tags"}, c);
    s.connector.url = get_str(layers, {"connector", "url"}, c);
    s.connector.timeout_ms = get_int(layers, {"connector", "timeout_ms"}, c);
    s.connector.connect_timeout_ms = get_int(layers, {"connector", "connect_timeout_ms"}, c);
    s.connector.headers = get_map(layers, {"connector", "headers"}, c);
    s.connector.file_suffix = get_str(layers, {"connector", "file_suffix"}, c);
    s.connector.tls.ca_file = get_str(layers, {"connector", "tls", "ca_file"}, c);
    s.connector.tls.cert_file = get_str(layers, {"connector", "tls", "cert_file"}, c);
    s.connector.tls.key_file = get_str(layers, {"connector", "tls", "key_file"}, c);
    s.connector.tls.verify = get_bool(layers, {"connector", "tls", "verify"}, c);
    s.concurrency = static_cast<int>(get_int(layers, {"concurrency"}, c));
    s.rate_limit = static_cast<int>(get_int(layers, {"rate_limit"}, c));
    s.retry.max_attempts = static_cast<int>(get_int(layers, {"retry", "max_attempts"}, c));
    s.retry.initial_backoff_ms = get_int(layers, {"retry", "initial_backoff_ms"}, c);
    s.retry.max_backoff_ms = get_int(layers, {"retry", "max_backoff_ms"}, c);
    s.retry.multiplier_percent =
        static_cast<int>(get_int(layers, {"retry", "multiplier_percent"}, c));
    s.retry.jitter_percent = static_cast<int>(get_int(layers, {"retry", "jitter_percent"}, c));
    s.breaker.failure_threshold =
        static_cast<int>(get_int(layers, {"circuit_breaker", "failure_threshold"}, c));
    s.breaker.open_ms = get_int(layers, {"circuit_breaker", "open_ms"}, c);
    s.ordering =
        get_str(layers, {"ordering"}, c) == "none" ? Ordering::kNone : Ordering::kPerPatient;
    s.receipts = get_str(layers, {"receipts"}, c);
    s.enabled = get_bool(layers, {"enabled"}, c);

    auto err = [&](const std::vector<std::string>& keys, const std::string& msg) {
      auto p = pick(layers, keys);
      YAML::Mark m = p ? p->first.Mark() : at.Mark();
      std::string path = p ? p->second : origin;
      c.d.error(c.file, m, path, msg + c.row_note);
    };
    static const std::regex kIdRe("[a-z0-9][a-z0-9_-]{0,99}");
    if (!std::regex_match(s.id, kIdRe)) {
      err({"id"}, "system id '" + s.id +
                      "' must be lower case letters, digits, '-' or '_' (it names topics)");
      return;
    }
    std::string where = c.file + ":" + std::to_string(s.line) + ":" + std::to_string(s.column);
    if (auto it = id_at.find(s.id); it != id_at.end()) {
      err({"id"}, "duplicate system id '" + s.id + "' (first declared at " + it->second + ")");
      return;
    }
    id_at[s.id] = where + (c.row_note.empty() ? "" : c.row_note);
    std::string why;
    if (s.connector.url.empty()) {
      err({"connector"}, "system '" + s.id + "' has no connector.url");
    } else if (!parse_url(s.connector.url, base_dir, s.connector, why)) {
      err({"connector", "url"}, why);
    }
    const bool tls_keys = !s.connector.tls.ca_file.empty() || !s.connector.tls.cert_file.empty();
    if (tls_keys && !s.connector.tls_enabled())
      c.d.warning(c.file, at.Mark(), origin,
                  "system '" + s.id + "': tls settings are ignored for a " + s.connector.type +
                      " connector (use https:// or mllps://)");
    if (s.connector.tls.cert_file.empty() != s.connector.tls.key_file.empty())
      err({"connector", "tls"}, "cert_file and key_file go together (mutual TLS)");
    for (const auto& h : s.her_ids) {
      if (!all_digits(h) || h.size() > 9) {
        err({"her_ids"}, "HER-id '" + h + "' of '" + s.id + "' must be 1 to 9 digits");
        continue;
      }
      if (auto it = r.by_her_.find(h); it != r.by_her_.end())
        err({"her_ids"}, "HER-id " + h + " is claimed by both '" + r.systems_[it->second].id +
                             "' and '" + s.id + "'");
    }
    for (const auto& o : s.org_numbers)
      if (!all_digits(o) || o.size() != 9)
        err({"org_numbers"}, "organisation number '" + o + "' of '" + s.id + "' must be 9 digits");
    for (const auto& f : s.accepts)
      if (!valid_format(f))
        err({"accepts"}, "format '" + f +
                             "' is not one of kith/<type>/<version>, kith/<type>/*, kith/*, "
                             "hl7v2/<version>, hl7v2/*, json");
    if (s.retry.initial_backoff_ms > s.retry.max_backoff_ms)
      err({"retry"}, "initial_backoff_ms is larger than max_backoff_ms");
    const size_t idx = r.systems_.size();
    r.by_id_[s.id] = idx;
    for (const auto& h : s.her_ids) r.by_her_.emplace(h, idx);
    for (const auto& o : s.org_numbers) r.by_org_.emplace(o, idx);
    r.json_.push_back(s.to_json());
    r.systems_.push_back(std::move(s));
  }
};

namespace {

std::shared_ptr<const Registry> build(YAML::Node root, const std::string& file, Diagnostics& d);

}  // namespace

std::shared_ptr<const Registry> Registry::load(const std::string& file, Diagnostics& diags) {
  YAML::Node root = config::load_yaml_file(file, diags);
  return build(root, file, diags);
}

std::shared_ptr<const Registry> Registry::parse(const std::string& text, const std::string& file,
                                                Diagnostics& diags) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    diags.error(file, e.mark, "", "YAML syntax: " + e.msg);
  }
  return build(root, file, diags);
}

const System* Registry::find(const std::string& id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &systems_[it->second];
}

const System* Registry::owner_of_her(const std::string& her_id) const {
  const auto it = by_her_.find(her_id);
  return it == by_her_.end() ? nullptr : &systems_[it->second];
}

const System* Registry::owner_of_org(const std::string& org_number) const {
  const auto it = by_org_.find(org_number);
  return it == by_org_.end() ? nullptr : &systems_[it->second];
}

uint64_t Registry::next_serial() {
  static std::atomic<uint64_t> n{0};
  return ++n;
}

const nlohmann::json& Registry::json_of(const std::string& id) const {
  static const nlohmann::json kNullJson;
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? kNullJson : json_[it->second];
}

namespace {

std::shared_ptr<const Registry> build(YAML::Node root, const std::string& file, Diagnostics& d) {
  auto reg = std::make_shared<Registry>();
  RegistryBuilder::set_file(*reg, file);
  if (!root || root.IsNull()) {
    if (!d.has_errors()) d.error(file, YAML::Mark(), "", "the registry is empty");
    return reg;
  }
  if (!root.IsMap()) {
    d.error(file, root.Mark(), "", "expected a mapping with defaults, systems and groups");
    return reg;
  }
  config::expand_environment(root, file, "", d);
  config::validate(root, systems_file_spec(), file, "", d);
  if (d.has_errors()) return reg;
  Ctx c{file, d, nullptr, {}};
  RegistryBuilder b{*reg, c, std::filesystem::path(file).parent_path().string(), {}};
  Layer defaults{root["defaults"], "defaults"};
  if (const YAML::Node systems = root["systems"]) {
    for (size_t i = 0; i < systems.size(); ++i) {
      const std::string path = "systems[" + std::to_string(i) + "]";
      b.add({{systems[i], path}, defaults}, systems[i], path);
    }
  }
  if (const YAML::Node groups = root["groups"]) {
    for (size_t g = 0; g < groups.size(); ++g) {
      const YAML::Node group = groups[g];
      const std::string gpath = "groups[" + std::to_string(g) + "]";
      std::vector<std::string> columns;
      for (const auto& col : group["columns"]) columns.push_back(col.Scalar());
      const int repeat = group["repeat"] ? std::stoi(group["repeat"].Scalar()) : 1;
      const YAML::Node tmpl = group["template"];
      if (!tmpl) {
        d.error(file, group.Mark(), gpath, "a group needs a template");
        continue;
      }
      const YAML::Node rows = group["rows"];
      if (!rows || !rows.IsSequence()) {
        d.error(file, group.Mark(), gpath, "a group needs rows: a list of rows");
        continue;
      }
      for (size_t r = 0; r < rows.size(); ++r) {
        const YAML::Node row = rows[r];
        std::vector<std::string> values;
        if (row.IsSequence()) {
          for (const auto& v : row) values.push_back(v.IsScalar() ? v.Scalar() : "");
        } else if (row.IsScalar() && columns.size() == 1) {
          values.push_back(row.Scalar());
        }
        if (values.size() != columns.size()) {
          d.error(file, row.Mark(), gpath + ".rows[" + std::to_string(r) + "]",
                  "row has " + std::to_string(values.size()) + " values for " +
                      std::to_string(columns.size()) + " columns");
          continue;
        }
        for (int i = 1; i <= repeat; ++i) {
          Vars vars;
          for (size_t k = 0; k < columns.size(); ++k) vars[columns[k]] = values[k];
          vars["i"] = std::to_string(i);
          c.vars = &vars;
          c.row_note = " (row " + std::to_string(r + 1) +
                       (repeat > 1 ? ", i=" + std::to_string(i) : std::string()) + ")";
          b.add({{tmpl, gpath + ".template"}, defaults}, tmpl,
                gpath + " row " + std::to_string(r + 1));
        }
      }
      c.vars = nullptr;
      c.row_note.clear();
    }
  }
  if (reg->systems().empty() && !d.has_errors())
    d.warning(file, root.Mark(), "", "no systems declared: routes can deliver nowhere");
  return reg;
}

}  // namespace

}  // namespace budstikke::registry
