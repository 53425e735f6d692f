#include "engine/runtime/source.hpp"

#include <set>

namespace budstikke::runtime {

void SourceRegistry::validate(const YAML::Node& sources, const std::string& file,
                              config::Diagnostics& d) const {
  if (!sources || !sources.IsSequence()) return;
  std::set<std::string> names;
  for (size_t i = 0; i < sources.size(); ++i) {
    const YAML::Node s = sources[i];
    const std::string path = "sources[" + std::to_string(i) + "]";
    if (!s.IsMap()) continue;  // already reported by the engine spec
    const YAML::Node type = s["type"];
    if (!type || !type.IsScalar()) {
      d.error(file, s.Mark(), path + ".type", "is required (one of the source types)");
      continue;
    }
    const SourceFactory* f = find(type.Scalar());
    if (!f) {
      std::string known;
      for (const auto& [t, _] : factories_) known += (known.empty() ? "" : ", ") + t;
      d.error(file, type.Mark(), path + ".type",
              "unknown source type '" + type.Scalar() + "' (known: " + known + ")");
      continue;
    }
    config::validate(s, *f->spec, file, path, d);
    if (const YAML::Node n = s["name"]; n && n.IsScalar() && !names.insert(n.Scalar()).second)
      d.error(file, n.Mark(), path + ".name", "duplicate source name '" + n.Scalar() + "'");
  }
}

Result<std::vector<std::unique_ptr<Source>>> SourceRegistry::create_all(const YAML::Node& sources,
                                                                        SourceContext& ctx) const {
  std::vector<std::unique_ptr<Source>> out;
  if (!sources || !sources.IsSequence()) return out;
  for (size_t i = 0; i < sources.size(); ++i) {
    const SourceFactory* f = find(sources[i]["type"].Scalar());
    if (!f) return Error::permanent(ErrorDomain::kConfig, "unknown source type");
    auto s = f->create(sources[i], ctx);
    if (!s) return s.error();
    out.push_back(std::move(*s));
  }
  return out;
}

}  // namespace budstikke::runtime
