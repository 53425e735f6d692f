#pragma once
// Sources receive bytes from the outside (files, HTTP, MLLP) and hand them to the ingest
// stage; they acknowledge upstream only when the ingest stage says Kafka has the records.
//
// Each source type registers a factory with its declared config spec in a SourceRegistry
// (explicitly, by the CLI: no static-init magic). The registry validates the `sources:`
// list of engine.yaml entry by entry against each type's spec, with positions.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "engine/config/engine_config.hpp"
#include "engine/config/spec.hpp"
#include "engine/runtime/ingest.hpp"

namespace budstikke::runtime {

class Source {
 public:
  virtual ~Source() = default;
  virtual const std::string& name() const = 0;
  // Starts receiving. Errors (port in use, missing folder) are returned, not thrown.
  virtual Status start() = 0;
  // Stops receiving new input, waits for in-flight messages to be acknowledged or given
  // up (they will be offered again after a restart), and releases resources.
  virtual void stop() = 0;
};

struct SourceContext {
  Ingest& ingest;
  const config::EngineConfig& engine;
};

struct SourceFactory {
  std::string type;
  std::string description;
  std::shared_ptr<const config::Spec> spec;  // includes `name` and `type`
  std::function<Result<std::unique_ptr<Source>>(const YAML::Node&, SourceContext&)> create;
};

class SourceRegistry {
 public:
  void add(SourceFactory f) { factories_[f.type] = std::move(f); }
  const SourceFactory* find(const std::string& type) const {
    const auto it = factories_.find(type);
    return it == factories_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, SourceFactory>& all() const { return factories_; }

  // Validates every entry of the sources list (types known, each against its spec, names
  // unique).
  void validate(const YAML::Node& sources, const std::string& file, config::Diagnostics& d) const;
  Result<std::vector<std::unique_ptr<Source>>> create_all(const YAML::Node& sources,
                                                          SourceContext& ctx) const;

 private:
  std::map<std::string, SourceFactory> factories_;
};

}  // namespace budstikke::runtime
