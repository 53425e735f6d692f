#pragma once
// Declared configuration: every property is declared once (name, type, default, bounds,
// required/secret flags, description). One declaration drives validation of the YAML nodes
// (with file:line:col), `budstikke lint`, and the generated reference (docs/config.md).
//
// Validation works on yaml-cpp nodes, never on a converted copy, so every diagnostic keeps
// its position. All problems are collected; nothing stops at the first.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace budstikke::config {

enum class Severity { kError, kWarning };

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
  Severity severity = Severity::kError;
  std::string path;  // e.g. kafka.tls.ca_file
  std::string message;
  // "file:line:col: error: path: message"
  std::string format() const;
};

class Diagnostics {
 public:
  void add(Diagnostic d) { items_.push_back(std::move(d)); }
  void error(const std::string& file, const YAML::Mark& mark, const std::string& path,
             const std::string& message);
  void warning(const std::string& file, const YAML::Mark& mark, const std::string& path,
               const std::string& message);
  bool has_errors() const;
  const std::vector<Diagnostic>& items() const { return items_; }
  std::string format_all() const;  // one line each

 private:
  std::vector<Diagnostic> items_;
};

// kAny: any YAML value; its owner checks it (e.g. the rows of a systems.yaml group).
enum class Kind { kString, kInt, kBool, kStringList, kStringMap, kObject, kObjectList, kAny };

struct Spec;

struct Field {
  std::string name;
  Kind kind = Kind::kString;
  std::string description;
  bool required = false;
  bool secret = false;
  std::optional<std::string> default_value;  // as written in YAML
  std::optional<int64_t> min;
  std::optional<int64_t> max;
  std::vector<std::string> allowed;    // enumerated values for strings
  size_t min_length = 0;               // for strings
  std::string deprecated;              // non-empty: deprecated, with this hint
  std::shared_ptr<const Spec> object;  // for kObject and kObjectList
};

struct Spec {
  std::string name;
  std::string description;
  std::vector<Field> fields;
  const Field* find(const std::string& name) const;
  // The field of that name, to refine a declaration; one the spec does not declare is a
  // programming error (std::logic_error naming it), never a silently wrong field.
  Field& at(std::string_view name);
};

std::shared_ptr<const Spec> make_spec(Spec s);

// A field declaration in one call.
Field make_field(std::string name, Kind kind, std::string description,
                 std::optional<std::string> default_value = std::nullopt, bool required = false);
// An integer field with a default and the bounds it must lie within (no upper one: none).
Field make_int(std::string name, std::string description, int64_t default_value, int64_t min,
               std::optional<int64_t> max = std::nullopt);
// A string field with a default that takes one of `allowed`.
Field make_choice(std::string name, std::string description, std::string default_value,
                  std::vector<std::string> allowed);
// A nested mapping (kObject) or a list of them (kObjectList) described by `spec`.
Field make_object(std::string name, std::string description, std::shared_ptr<const Spec> spec,
                  Kind kind = Kind::kObject);

// Validates `node` against `spec`. `path` is the dotted path of the node ("" for the root).
void validate(const YAML::Node& node, const Spec& spec, const std::string& file,
              const std::string& path, Diagnostics& diags);

// Loads a YAML file. Syntax errors become diagnostics (with position); returns a null node then.
YAML::Node load_yaml_file(const std::string& file, Diagnostics& diags);

// Expands ${NAME} and ${NAME:-default} from the environment in every string scalar, in
// place. An unset variable without a default is an error at its position.
void expand_environment(YAML::Node node, const std::string& file, const std::string& path,
                        Diagnostics& diags);

// Markdown reference of a spec (used to generate docs/config.md).
std::string reference_markdown(const Spec& spec, int heading_level = 2);

// Typed getters with defaults from the spec (call only after validation succeeded).
std::string get_string(const YAML::Node& node, const Spec& spec, const std::string& name);
int64_t get_int(const YAML::Node& node, const Spec& spec, const std::string& name);
bool get_bool(const YAML::Node& node, const Spec& spec, const std::string& name);

}  // namespace budstikke::config
