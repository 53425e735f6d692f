#include "engine/config/spec.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace budstikke::config {
namespace {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kString:
      return "string";
    case Kind::kInt:
      return "integer";
    case Kind::kBool:
      return "boolean";
    case Kind::kStringList:
      return "list of strings";
    case Kind::kStringMap:
      return "map of strings";
    case Kind::kObject:
      return "object";
    case Kind::kObjectList:
      return "list of objects";
    case Kind::kAny:
      return "any";
  }
  return "value";
}

std::string join_path(const std::string& base, const std::string& name) {
  return base.empty() ? name : base + "." + name;
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "yes" || s == "on") {
    out = true;
    return true;
  }
  if (s == "false" || s == "no" || s == "off") {
    out = false;
    return true;
  }
  return false;
}

// Edit distance for "did you mean" hints on unknown keys.
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

void validate_value(const YAML::Node& v, const Field& f, const std::string& file,
                    const std::string& path, Diagnostics& d) {
  const auto mark = v.Mark();
  auto expect = [&](const char* what) {
    d.error(file, mark, path, std::string("expected ") + what);
  };
  switch (f.kind) {
    case Kind::kAny:
      return;
    case Kind::kString: {
      if (!v.IsScalar()) return expect("a string");
      const auto& s = v.Scalar();
      if (!f.allowed.empty()) {
        bool ok = false;
        for (const auto& a : f.allowed) ok = ok || a == s;
        if (!ok) {
          std::string list;
          for (const auto& a : f.allowed) list += (list.empty() ? "" : ", ") + a;
          d.error(file, mark, path, "'" + s + "' is not one of: " + list);
        }
      }
      if (f.required && s.empty()) d.error(file, mark, path, "must not be empty");
      if (s.size() < f.min_length)
        d.error(file, mark, path,
                "must be at least " + std::to_string(f.min_length) + " characters");
      return;
    }
    case Kind::kInt: {
      int64_t n = 0;
      if (!v.IsScalar() || !parse_int(v.Scalar(), n)) return expect("an integer");
      if (f.min && n < *f.min)
        d.error(file, mark, path, "must be at least " + std::to_string(*f.min));
      if (f.max && n > *f.max)
        d.error(file, mark, path, "must be at most " + std::to_string(*f.max));
      return;
    }
    case Kind::kBool: {
      bool b = false;
      if (!v.IsScalar() || !parse_bool(v.Scalar(), b)) return expect("true or false");
      return;
    }
    case Kind::kStringList: {
      if (!v.IsSequence()) return expect("a list of strings");
      for (size_t i = 0; i < v.size(); ++i)
        if (!v[i].IsScalar())
          d.error(file, v[i].Mark(), path + "[" + std::to_string(i) + "]", "expected a string");
      return;
    }
    case Kind::kStringMap: {
      if (!v.IsMap()) return expect("a map of strings");
      for (const auto& kv : v)
        if (!kv.second.IsScalar())
          d.error(file, kv.second.Mark(), join_path(path, kv.first.Scalar()), "expected a string");
      return;
    }
    case Kind::kObject:
      if (!v.IsMap()) return expect("a mapping");
      if (f.object) validate(v, *f.object, file, path, d);
      return;
    case Kind::kObjectList:
      if (!v.IsSequence()) return expect("a list");
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string p = path + "[" + std::to_string(i) + "]";
        if (!v[i].IsMap()) {
          d.error(file, v[i].Mark(), p, "expected a mapping");
          continue;
        }
        if (f.object) validate(v[i], *f.object, file, p, d);
      }
      return;
  }
}

}  // namespace

std::string Diagnostic::format() const {
  std::ostringstream o;
  // A problem with the file as a whole (cannot open it) has no position.
  o << file;
  if (line > 0) o << ':' << line << ':' << column;
  o << ": " << (severity == Severity::kError ? "error" : "warning") << ": ";
  if (!path.empty()) o << path << ": ";
  o << message;
  return o.str();
}

void Diagnostics::error(const std::string& file, const YAML::Mark& mark, const std::string& path,
                        const std::string& message) {
  items_.push_back(Diagnostic{file, mark.line >= 0 ? mark.line + 1 : 0,
                              mark.column >= 0 ? mark.column + 1 : 0, Severity::kError, path,
                              message});
}

void Diagnostics::warning(const std::string& file, const YAML::Mark& mark, const std::string& path,
                          const std::string& message) {
  items_.push_back(Diagnostic{file, mark.line >= 0 ? mark.line + 1 : 0,
                              mark.column >= 0 ? mark.column + 1 : 0, Severity::kWarning, path,
                              message});
}

bool Diagnostics::has_errors() const {
  for (const auto& i : items_)
    if (i.severity == Severity::kError) return true;
  return false;
}

std::string Diagnostics::format_all() const {
  std::string out;
  for (const auto& i : items_) out += i.format() + "\n";
  return out;
}

Field make_field(std::string name, Kind kind, std::string description,
                 std::optional<std::string> default_value, bool required) {
  Field f;
  f.name = std::move(name);
  f.kind = kind;
  f.description = std::move(description);
  f.default_value = std::move(default_value);
  f.required = required;
  return f;
}

const Field* Spec::find(const std::string& n) const {
  for (const auto& f : fields)
    if (f.name == n) return &f;
  return nullptr;
}

Field& Spec::at(std::string_view n) {
  for (auto& f : fields)
    if (f.name == n) return f;
  throw std::logic_error(name + " declares no field '" + std::string(n) + "'");
}

std::shared_ptr<const Spec> make_spec(Spec s) {
  return std::make_shared<const Spec>(std::move(s));
}

Field make_int(std::string name, std::string description, int64_t default_value, int64_t min,
               std::optional<int64_t> max) {
  Field f = make_field(std::move(name), Kind::kInt, std::move(description),
                       std::to_string(default_value));
  f.min = min;
  f.max = max;
  return f;
}

Field make_choice(std::string name, std::string description, std::string default_value,
                  std::vector<std::string> allowed) {
  Field f =
      make_field(std::move(name), Kind::kString, std::move(description), std::move(default_value));
  f.allowed = std::move(allowed);
  return f;
}

Field make_object(std::string name, std::string description, std::shared_ptr<const Spec> spec,
                  Kind kind) {
  Field f = make_field(std::move(name), kind, std::move(description));
  f.object = std::move(spec);
  return f;
}

void validate(const YAML::Node& node, const Spec& spec, const std::string& file,
              const std::string& path, Diagnostics& d) {
  if (!node.IsMap()) {
    d.error(file, node.Mark(), path.empty() ? spec.name : path, "expected a mapping");
    return;
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const std::string p = join_path(path, key);
    const Field* f = spec.find(key);
    if (!f) {
      std::string hint;
      size_t best = 3;
      for (const auto& c : spec.fields) {
        const size_t dist = distance(key, c.name);
        if (dist < best) {
          best = dist;
          hint = "; did you mean '" + c.name + "'?";
        }
      }
      d.error(file, kv.first.Mark(), p, "unknown key" + hint);
      continue;
    }
    if (!f->deprecated.empty()) d.warning(file, kv.first.Mark(), p, "deprecated: " + f->deprecated);
    if (kv.second.IsNull()) {
      if (f->required) d.error(file, kv.second.Mark(), p, "is required and must have a value");
      continue;
    }
    validate_value(kv.second, *f, file, p, d);
  }
  for (const auto& f : spec.fields) {
    if (f.required && !node[f.name])
      d.error(file, node.Mark(), join_path(path, f.name), "is required (" + f.description + ")");
  }
}

YAML::Node load_yaml_file(const std::string& file, Diagnostics& d) {
  std::ifstream in(file);
  if (!in) {
    d.add(Diagnostic{file, 0, 0, Severity::kError, "", "cannot open file"});
    return YAML::Node();
  }
  try {
    YAML::Node n = YAML::Load(in);
    if (!n || n.IsNull()) return YAML::Node(YAML::NodeType::Map);
    return n;
  } catch (const YAML::Exception& e) {
    d.error(file, e.mark, "", "YAML syntax: " + e.msg);
    return YAML::Node();
  }
}

void expand_environment(YAML::Node node, const std::string& file, const std::string& path,
                        Diagnostics& d) {
  if (node.IsMap()) {
    for (auto kv : node) expand_environment(kv.second, file, join_path(path, kv.first.Scalar()), d);
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      expand_environment(node[i], file, path + "[" + std::to_string(i) + "]", d);
  } else if (node.IsScalar()) {
    const std::string s = node.Scalar();
    if (s.find("${") == std::string::npos) return;
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      if (s.compare(i, 2, "${") != 0) {
        out.push_back(s[i++]);
        continue;
      }
      const size_t end = s.find('}', i);
      if (end == std::string::npos) {
        d.error(file, node.Mark(), path, "unterminated ${ in '" + s + "'");
        return;
      }
      std::string expr = s.substr(i + 2, end - i - 2);
      std::optional<std::string> def;
      if (const size_t c = expr.find(":-"); c != std::string::npos) {
        def = expr.substr(c + 2);
        expr = expr.substr(0, c);
      }
      const char* v = std::getenv(expr.c_str());
      if (v && *v) {
        out += v;
      } else if (def) {
        out += *def;
      } else {
        d.error(file, node.Mark(), path, "environment variable " + expr + " is not set");
        return;
      }
      i = end + 1;
    }
    node = out;
  }
}

std::string reference_markdown(const Spec& spec, int level) {
  std::ostringstream o;
  o << std::string(static_cast<size_t>(level), '#') << ' ' << spec.name << "\n\n";
  if (!spec.description.empty()) o << spec.description << "\n\n";
  o << "| key | type | default | description |\n|---|---|---|---|\n";
  for (const auto& f : spec.fields) {
    o << "| `" << f.name << "` | " << kind_name(f.kind);
    if (f.required) o << ", required";
    if (f.secret) o << ", secret";
    o << " | " << (f.default_value ? "`" + *f.default_value + "`" : std::string("")) << " | "
      << f.description;
    if (!f.allowed.empty()) {
      o << " One of:";
      for (const auto& a : f.allowed) o << " `" << a << "`";
      o << '.';
    }
    if (f.min || f.max) {
      o << " Range: " << (f.min ? std::to_string(*f.min) : "") << ".."
        << (f.max ? std::to_string(*f.max) : "") << '.';
    }
    if (!f.deprecated.empty()) o << " Deprecated: " << f.deprecated;
    o << " |\n";
  }
  o << '\n';
  for (const auto& f : spec.fields)
    if (f.object) o << reference_markdown(*f.object, level + 1);
  return o.str();
}

std::string get_string(const YAML::Node& node, const Spec& spec, const std::string& name) {
  if (node && node.IsMap() && node[name] && node[name].IsScalar()) return node[name].Scalar();
  const Field* f = spec.find(name);
  return f && f->default_value ? *f->default_value : std::string();
}

int64_t get_int(const YAML::Node& node, const Spec& spec, const std::string& name) {
  int64_t v = 0;
  if (parse_int(get_string(node, spec, name), v)) return v;
  return 0;
}

bool get_bool(const YAML::Node& node, const Spec& spec, const std::string& name) {
  bool b = false;
  return parse_bool(get_string(node, spec, name), b) && b;
}

}  // namespace budstikke::config
